//! Signed tree heads as they reach an auditor (see the crate's envelope
//! framing): [`tree_head::verify`] with the fixed issuer key and
//! [`tree_head::decode_unverified`] refuse bad bytes with an error, agree on
//! every head that verifies, and a verified head survives being signed
//! again.

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, envelope, issuer_key, trusted};
use chipward_proto::audit::{MAX_LOG_ID_LEN, MAX_TREE_HEAD_LEN, tree_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = issuer_key();
    let Some(bytes) = envelope(data, &key, ISSUER_KEY_ID) else {
        return;
    };
    let keys = trusted(&key, ISSUER_KEY_ID);

    let unverified = tree_head::decode_unverified(&bytes);
    let Ok(verified) = tree_head::verify(&bytes, &keys) else {
        return;
    };
    let head = verified.head();
    assert_eq!(unverified.as_ref(), Ok(head));
    assert_eq!(verified.key_id(), ISSUER_KEY_ID);
    assert!(head.log_id.len() <= MAX_LOG_ID_LEN);

    let again = head
        .sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec())
        .expect("a verified head encodes");
    if again.len() <= MAX_TREE_HEAD_LEN {
        let reread = tree_head::verify(&again, &keys).map(|v| v.head().clone());
        assert_eq!(reread.as_ref(), Ok(head));
    }
});
