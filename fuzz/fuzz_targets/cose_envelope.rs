//! The COSE_Sign1 envelope every signed Chipward object travels in (see the
//! crate's envelope framing): [`cose::open`] with the fixed issuer key
//! refuses bad bytes with an error; what it opens, [`cose::peek_payload`]
//! reads the same way, and the payload survives being sealed again. The
//! untagged form of any envelope is refused.

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, envelope, issuer_key, seal, trusted};
use chipward_proto::cose::{self, CoseError};
use libfuzzer_sys::fuzz_target;

/// A limit above any input libFuzzer makes here, so that size never decides.
const MAX_LEN: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let key = issuer_key();
    let Some(bytes) = envelope(data, &key, ISSUER_KEY_ID) else {
        return;
    };
    let keys = trusted(&key, ISSUER_KEY_ID);

    let opened = cose::open(&bytes, MAX_LEN, &keys);
    let peeked = cose::peek_payload(&bytes, MAX_LEN);
    if let Some(untagged) = cose::untag(&bytes) {
        assert_eq!(
            cose::open(&untagged, MAX_LEN, &keys),
            Err(CoseError::Malformed)
        );
    }

    let Ok(opened) = opened else {
        return;
    };
    assert_eq!(peeked.as_ref(), Ok(&opened.payload));
    assert_eq!(opened.key_id, ISSUER_KEY_ID);
    let again = seal(opened.payload.clone(), &key, ISSUER_KEY_ID);
    assert_eq!(cose::open(&again, MAX_LEN, &keys), Ok(opened));
});
