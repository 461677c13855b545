//! The two TPM2B_PUBLIC areas a host sends to begin enrolment, and the
//! credential the issuer seals to them: [`endorsement_key`] and
//! [`attestation_key`] refuse bad bytes with an error; what they accept
//! holds their profile (RSA EK of at least 2048 bits with nameAlg SHA-256,
//! storage attributes, AK with signing attributes whose name is the SHA-256
//! of exactly the bytes sent); and [`make_credential`] seals to every
//! accepted EK for every accepted AK's name, or refuses the key with an
//! error, never any other way.
//!
//! The same input is tried as an EK and as an AK; a credential needs both,
//! so an input split in two by its TPM2B size field gives the pair.

#![no_main]

use chipward_certs::tpm_credential::{CredentialError, RsaEk, make_credential};
use chipward_issuer::host_enrolment::keys::{MIN_RSA_BITS, attestation_key, endorsement_key};
use chipward_proto::tpm::alg;
use chipward_proto::tpm::public::{ATTR_DECRYPT, ATTR_RESTRICTED, ATTR_SIGN, PublicKey, TpmPublic};
use libfuzzer_sys::fuzz_target;
use ring::digest::{SHA256, digest};

/// A name for the AK when the input holds no AK of its own.
const FIXED_AK_NAME: [u8; 34] = {
    let mut name = [0x5A; 34];
    (name[0], name[1]) = (0x00, 0x0B);
    name
};

fuzz_target!(|data: &[u8]| {
    let (first, second) = split_tpm2b(data);

    let ak_name = match attestation_key(second) {
        Ok(ak) => {
            assert_eq!(ak.public(), second);
            let expected = [&[0x00, 0x0B][..], digest(&SHA256, &second[2..]).as_ref()].concat();
            assert_eq!(ak.name(), expected.as_slice());
            let public = TpmPublic::decode_sized(second).expect("an accepted ak parses");
            assert_eq!(public.attributes & (ATTR_SIGN | ATTR_DECRYPT), ATTR_SIGN);
            ak.name().to_vec()
        }
        Err(_) => FIXED_AK_NAME.to_vec(),
    };

    if endorsement_key(first).is_err() {
        return;
    }
    let public = TpmPublic::decode_sized(first).expect("an accepted ek parses");
    assert_eq!(public.name_alg, alg::SHA256);
    assert_eq!(
        public.attributes & (ATTR_RESTRICTED | ATTR_DECRYPT | ATTR_SIGN),
        ATTR_RESTRICTED | ATTR_DECRYPT
    );
    let PublicKey::Rsa { modulus, exponent } = public.key else {
        panic!("an accepted ek is rsa");
    };
    let significant = modulus.iter().skip_while(|b| **b == 0).count();
    assert!(significant * 8 >= MIN_RSA_BITS);

    let ek = RsaEk { modulus, exponent };
    match make_credential(&ek, &ak_name, &[0x42; 32]) {
        Ok(sealed) => assert_eq!(sealed.secret.len(), significant),
        Err(CredentialError::UnsupportedEk(_)) => {}
        Err(e) => panic!("sealing to an accepted ek failed: {e}"),
    }
});

/// The first TPM2B (its 16-bit size and that many bytes, or all there is)
/// and what follows it.
fn split_tpm2b(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((size, _)) = data.split_first_chunk::<2>() else {
        return (data, &[]);
    };
    let end = (2 + usize::from(u16::from_be_bytes(*size))).min(data.len());
    data.split_at(end)
}
