//! Verifier challenges coming back through a device: [`Challenge::decode`]
//! refuses bad bytes with an error and re-encodes what it accepted.

#![no_main]

use chipward_proto::nonce::{CHALLENGE_MAC_INPUT_LEN, Challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(challenge) = Challenge::decode(data) else {
        return;
    };

    assert_eq!(challenge.encode(), data);
    assert_eq!(&challenge.mac_input()[..], &data[..CHALLENGE_MAC_INPUT_LEN]);
});
