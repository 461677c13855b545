//! Revocation lists as a verifier fetches them (see the crate's envelope
//! framing): [`revocation::verify`] with the fixed issuer key refuses bad
//! bytes with an error, a verified list finds each of its entries, and it
//! survives being signed again.

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, envelope, issuer_key, trusted};
use chipward_proto::revocation::{self, MAX_LIST_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = issuer_key();
    let Some(bytes) = envelope(data, &key, ISSUER_KEY_ID) else {
        return;
    };
    let keys = trusted(&key, ISSUER_KEY_ID);

    let Ok(list) = revocation::verify(&bytes, &keys) else {
        return;
    };
    assert!(list.entries.iter().all(|e| list.contains(&e.token_id)));

    let again = list.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    if again.len() <= MAX_LIST_LEN {
        assert_eq!(revocation::verify(&again, &keys), Ok(list));
    }
});
