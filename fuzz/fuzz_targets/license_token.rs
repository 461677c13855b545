//! License tokens as a device or verifier receives them (see the crate's
//! envelope framing): [`license::verify`] with the fixed issuer key and
//! [`license::decode_unverified`] refuse bad bytes with an error, agree on
//! every token that verifies, and a verified token's claims survive being
//! signed again.

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, NOW_UNIX, envelope, issuer_key, trusted};
use chipward_proto::license::{self, MAX_TOKEN_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = issuer_key();
    let Some(token) = envelope(data, &key, ISSUER_KEY_ID) else {
        return;
    };
    let keys = trusted(&key, ISSUER_KEY_ID);

    let unverified = license::decode_unverified(&token);
    let Ok(verified) = license::verify(&token, &keys) else {
        return;
    };
    assert_eq!(unverified.as_ref(), Ok(verified.claims()));
    assert_eq!(verified.key_id(), ISSUER_KEY_ID);
    let _ = verified.check_window(NOW_UNIX, 60);

    let again = verified
        .claims()
        .sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    if again.len() <= MAX_TOKEN_LEN {
        let reread = license::verify(&again, &keys).map(|v| v.claims().clone());
        assert_eq!(reread.as_ref(), Ok(verified.claims()));
    }
});
