//! Attestation results as the issuer receives them back from operators (see
//! the crate's envelope framing): [`result::verify`] with the fixed verifier
//! key and [`result::decode_unverified`] refuse bad bytes with an error,
//! agree on every result that verifies, and a verified result survives
//! being signed again. Results are compared by their CBOR encoding, since a
//! location bound may hold a NaN.

#![no_main]

use chipward_fuzz::{VERIFIER_KEY_ID, envelope, trusted, verifier_key};
use chipward_proto::result::{self, AttestationResult, MAX_RESULT_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = verifier_key();
    let Some(bytes) = envelope(data, &key, VERIFIER_KEY_ID) else {
        return;
    };
    let keys = trusted(&key, VERIFIER_KEY_ID);

    let unverified = result::decode_unverified(&bytes);
    let Ok(verified) = result::verify(&bytes, &keys) else {
        return;
    };
    let decoded = unverified.expect("a result that verifies also decodes unverified");
    assert_eq!(cbor(&decoded), cbor(verified.result()));

    let again = verified
        .result()
        .sign(VERIFIER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    if again.len() <= MAX_RESULT_LEN {
        let reread = result::verify(&again, &keys).expect("a re-signed result verifies");
        assert_eq!(cbor(reread.result()), cbor(verified.result()));
    }
});

fn cbor(result: &AttestationResult) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(result, &mut out).expect("writing cbor to a vec cannot fail");
    out
}
