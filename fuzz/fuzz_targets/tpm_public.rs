//! TPM2B_PUBLIC and TPMT_PUBLIC areas of attestation and endorsement keys,
//! and the verifier's reading of a key file (`check-quote -u`): decoders
//! refuse bad bytes with an error, keep the public area byte for byte (its
//! hash is the key's name), and re-encode what they accepted.

#![no_main]

use chipward_proto::tpm::public::TpmPublic;
use chipward_verifier::evidence::tpm::key::QuoteKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(public) = TpmPublic::decode(data) {
        assert_eq!(public.raw, data);
        if let Ok(name) = public.name() {
            assert_eq!(&name[..2], &public.name_alg.to_be_bytes());
        }
        assert_eq!(
            TpmPublic::decode_sized(&public.encode_sized()),
            Ok(public.clone())
        );
        let _ = QuoteKey::from_tpm_public(&public);
    }

    if let Ok(public) = TpmPublic::decode_sized(data) {
        assert_eq!(public.encode_sized(), data);
        assert_eq!(
            QuoteKey::from_tpm2b_public(data),
            QuoteKey::from_tpm_public(&public)
        );
    }

    let _ = QuoteKey::from_file_bytes(data);
});
