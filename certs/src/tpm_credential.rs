//! TPM2_MakeCredential in pure Rust (TPM 2.0 Library Part 1, section 24,
//! "Credential Protection"; Part 3, TPM2_MakeCredential): seals a secret to
//! an endorsement key so that only the TPM holding it, and only for a key
//! with the given name loaded in that TPM, can recover it with
//! TPM2_ActivateCredential. This is how an attestation key is bound to a
//! TPM whose EK certificate the vendor's chain vouches for.
//!
//! Input from the host (the EK public area and the AK name) is
//! attacker-controlled; both are checked before use: only an RSA-2048+
//! restricted decryption EK with nameAlg SHA-256 and AES-128-CFB is
//! accepted, the profile of the TCG EK Credential Profile's default RSA
//! template.
//!
//! Limitation: ECC endorsement keys (ECDH seed exchange) are not supported
//! yet; their hosts are refused with [`CredentialError::UnsupportedEk`].

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rsa::{BigUint, Oaep, RsaPublicKey};
use thiserror::Error;
use zeroize::Zeroizing;

type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;

/// The RSA endorsement key a credential is sealed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaEk {
    /// Modulus, big-endian.
    pub modulus: Vec<u8>,
    /// Public exponent.
    pub exponent: u32,
}

/// What a host hands to TPM2_ActivateCredential.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCredential {
    /// TPM2B_ID_OBJECT contents: TPM2B_DIGEST(integrity HMAC) then the
    /// encrypted identity.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents: the seed under RSA-OAEP.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for SealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCredential")
            .field("credential_blob_len", &self.credential_blob.len())
            .field("secret_len", &self.secret.len())
            .finish()
    }
}

/// Why a credential could not be made.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialError {
    /// The EK is not one this code can seal to.
    #[error("unsupported endorsement key: {0}")]
    UnsupportedEk(&'static str),
    /// The object name is not a SHA-256 TPM name.
    #[error("object name must be 34 bytes: 0x000b then a sha-256 digest")]
    Name,
    /// The credential is empty or longer than a SHA-256 digest.
    #[error("credential must be 1 to 32 bytes")]
    Credential,
    /// Randomness or encryption failed.
    #[error("credential sealing failed")]
    Crypto,
}

/// Digest size of SHA-256, the EK's nameAlg.
const DIGEST: usize = 32;
/// AES-128 key size.
const SYM_KEY: usize = 16;

/// Seals `credential` to `ek` for the object called `object_name`.
pub fn make_credential(
    ek: &RsaEk,
    object_name: &[u8],
    credential: &[u8],
) -> Result<SealedCredential, CredentialError> {
    // 1. Inputs.
    if object_name.len() != 2 + DIGEST || object_name[..2] != [0x00, 0x0B] {
        return Err(CredentialError::Name);
    }
    if credential.is_empty() || credential.len() > DIGEST {
        return Err(CredentialError::Credential);
    }
    let n = BigUint::from_bytes_be(&ek.modulus);
    if n.bits() < 2048 {
        return Err(CredentialError::UnsupportedEk(
            "rsa modulus under 2048 bits",
        ));
    }
    let public = RsaPublicKey::new(n, BigUint::from(ek.exponent))
        .map_err(|_| CredentialError::UnsupportedEk("not a usable rsa key"))?;

    // 2. A fresh seed, encrypted to the EK with OAEP-SHA256, label "IDENTITY".
    let mut seed = Zeroizing::new([0u8; DIGEST]);
    SystemRandom::new()
        .fill(seed.as_mut())
        .map_err(|_| CredentialError::Crypto)?;
    let oaep = Oaep::new_with_label::<sha2::Sha256, _>("IDENTITY\0");
    let secret = public
        .encrypt(&mut rsa::rand_core::OsRng, oaep, seed.as_ref())
        .map_err(|_| CredentialError::Crypto)?;

    // 3. The identity, AES-128-CFB under KDFa(seed, "STORAGE", name).
    let sym_key = kdfa(seed.as_ref(), b"STORAGE", object_name, &[], SYM_KEY * 8);
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    enc_identity.extend_from_slice(&(credential.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(credential);
    let key: &[u8; SYM_KEY] = sym_key[..SYM_KEY]
        .try_into()
        .map_err(|_| CredentialError::Crypto)?;
    Aes128CfbEnc::new(key.into(), &[0u8; 16].into()).encrypt(&mut enc_identity);

    // 4. The outer HMAC over encIdentity and the name.
    let hmac_key = kdfa(seed.as_ref(), b"INTEGRITY", &[], &[], DIGEST * 8);
    let key = hmac::Key::new(hmac::HMAC_SHA256, &hmac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&enc_identity);
    ctx.update(object_name);
    let integrity = ctx.sign();

    let mut credential_blob = (DIGEST as u16).to_be_bytes().to_vec();
    credential_blob.extend_from_slice(integrity.as_ref());
    credential_blob.extend_from_slice(&enc_identity);
    Ok(SealedCredential {
        credential_blob,
        secret,
    })
}

/// KDFa with HMAC-SHA256 (Part 1, section 11.4.10.2; SP 800-108 counter
/// mode): blocks of HMAC(key, counter ‖ label ‖ 0 ‖ contextU ‖ contextV ‖
/// bits), truncated to `bits`.
pub fn kdfa(
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: usize,
) -> Zeroizing<Vec<u8>> {
    let hkey = hmac::Key::new(hmac::HMAC_SHA256, key);
    let bytes = bits.div_ceil(8);
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + DIGEST));
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let mut ctx = hmac::Context::with_key(&hkey);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label);
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&(bits as u32).to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_its_definition_for_one_and_two_blocks() {
        // Worked directly from the definition with ring's HMAC.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"seed");
        let block = |i: u32, bits: u32| {
            let input = [
                &i.to_be_bytes()[..],
                b"STORAGE\0",
                b"ctx",
                &bits.to_be_bytes(),
            ]
            .concat();
            hmac::sign(&key, &input).as_ref().to_vec()
        };
        assert_eq!(
            *kdfa(b"seed", b"STORAGE", b"ctx", &[], 128),
            block(1, 128)[..16].to_vec()
        );
        let two = [block(1, 384), block(2, 384)].concat();
        assert_eq!(
            *kdfa(b"seed", b"STORAGE", b"ctx", &[], 384),
            two[..48].to_vec()
        );
    }

    #[test]
    fn refuses_bad_names_credentials_and_small_keys() {
        let ek = RsaEk {
            modulus: vec![0xC5; 256],
            exponent: 65_537,
        };
        let name = [&[0x00, 0x0B][..], &[1; 32]].concat();
        assert_eq!(
            make_credential(&ek, &name[..33], b"x"),
            Err(CredentialError::Name)
        );
        assert_eq!(
            make_credential(&ek, &name, &[]),
            Err(CredentialError::Credential)
        );
        assert_eq!(
            make_credential(&ek, &name, &[0; 33]),
            Err(CredentialError::Credential)
        );
        let small = RsaEk {
            modulus: vec![0xC5; 128],
            exponent: 65_537,
        };
        assert!(matches!(
            make_credential(&small, &name, b"x"),
            Err(CredentialError::UnsupportedEk(_))
        ));
        let sealed = make_credential(&ek, &name, b"0123456789abcdef").unwrap();
        assert_eq!(sealed.secret.len(), 256);
        // 2 + 32 integrity, then 2 + 16 encrypted identity.
        assert_eq!(sealed.credential_blob.len(), 2 + 32 + 2 + 16);
    }
}
