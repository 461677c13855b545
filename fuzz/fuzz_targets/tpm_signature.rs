//! TPMT_SIGNATURE structures a host sends beside its quote:
//! [`TpmSignature::decode`] refuses bad bytes with an error and re-encodes
//! what it accepted to the same bytes.

#![no_main]

use chipward_proto::tpm::signature::TpmSignature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(signature) = TpmSignature::decode(data) else {
        return;
    };

    assert_eq!(signature.encode(), data);
    assert_eq!(&data[2..4], &signature.hash().to_be_bytes());
});
