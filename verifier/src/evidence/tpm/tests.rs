//! Quote checks against quotes made here with ring keys, including the
//! known attacks: a forged magic, a swapped selection, unsigned PCR values,
//! a replayed nonce, SHA-1.

use chipward_proto::tpm::attest::{ClockInfo, TPM_ST_ATTEST_QUOTE};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};

use super::*;

const NONCE: [u8; 32] = [0x5a; 32];

fn pcr_value(index: u32) -> Vec<u8> {
    digest::digest(&digest::SHA256, &index.to_be_bytes())
        .as_ref()
        .to_vec()
}

/// All 24 SHA-256 PCRs, as a host might report them.
fn all_pcrs() -> PcrValues {
    PcrValues((0..24).map(|i| ((alg::SHA256, i), pcr_value(i))).collect())
}

fn selection(indices: &[u32]) -> PcrSelection {
    PcrSelection::new(&[(alg::SHA256, indices)])
}

fn attest(indices: &[u32], nonce: &[u8]) -> Attest {
    let concat: Vec<u8> = indices.iter().flat_map(|i| pcr_value(*i)).collect();
    Attest {
        magic: TPM_GENERATED_VALUE,
        attest_type: TPM_ST_ATTEST_QUOTE,
        qualified_signer: vec![0, 0x0B, 1, 2],
        extra_data: nonce.to_vec(),
        clock_info: ClockInfo {
            clock: 10_000,
            reset_count: 1,
            restart_count: 0,
            safe: true,
        },
        firmware_version: 1,
        pcr_select: selection(indices),
        pcr_digest: digest::digest(&digest::SHA256, &concat).as_ref().to_vec(),
    }
}

struct EcAk {
    pair: EcdsaKeyPair,
    key: QuoteKey,
}

fn ec_ak(p384: bool) -> EcAk {
    let rng = SystemRandom::new();
    let alg = if p384 {
        &sig::ECDSA_P384_SHA384_FIXED_SIGNING
    } else {
        &sig::ECDSA_P256_SHA256_FIXED_SIGNING
    };
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let key = if p384 {
        QuoteKey::P384(point)
    } else {
        QuoteKey::P256(point)
    };
    EcAk { pair, key }
}

fn ec_sign(ak: &EcAk, message: &[u8], hash: u16) -> Vec<u8> {
    let rs = ak.pair.sign(&SystemRandom::new(), message).unwrap();
    let half = rs.as_ref().len() / 2;
    TpmSignature::Ecdsa {
        hash,
        r: rs.as_ref()[..half].to_vec(),
        s: rs.as_ref()[half..].to_vec(),
    }
    .encode()
}

fn rsa_key() -> RsaKeyPair {
    let pem = include_str!("../../../../certs/testdata/rsa2048-test-key.pem");
    let der = chipward_certs::pem::parse_private_key(pem).unwrap();
    RsaKeyPair::from_pkcs8(&der).unwrap()
}

fn rsa_quote_key(pair: &RsaKeyPair) -> QuoteKey {
    let c: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    QuoteKey::Rsa { n: c.n, e: c.e }
}

fn rsa_sign(pair: &RsaKeyPair, message: &[u8], pss: bool, hash: u16) -> Vec<u8> {
    let padding: &'static dyn sig::RsaEncoding = match (pss, hash) {
        (false, alg::SHA256) => &sig::RSA_PKCS1_SHA256,
        (false, alg::SHA384) => &sig::RSA_PKCS1_SHA384,
        (true, alg::SHA256) => &sig::RSA_PSS_SHA256,
        (true, alg::SHA384) => &sig::RSA_PSS_SHA384,
        _ => panic!("no such padding here"),
    };
    let mut out = vec![0u8; pair.public().modulus_len()];
    pair.sign(padding, &SystemRandom::new(), message, &mut out)
        .unwrap();
    if pss {
        TpmSignature::RsaPss { hash, sig: out }.encode()
    } else {
        TpmSignature::RsaSsa { hash, sig: out }.encode()
    }
}

fn policy(indices: &[u32]) -> QuotePolicy {
    QuotePolicy {
        selection: selection(indices),
        allow_sha1: false,
    }
}

#[test]
fn accepts_each_scheme_and_curve() {
    let bytes = attest(&[0, 1, 2], &NONCE).encode();
    let p = policy(&[0, 1, 2]);
    for p384 in [false, true] {
        let ak = ec_ak(p384);
        for hash in [alg::SHA256, alg::SHA384] {
            // ring signs P-256 with SHA-256 and P-384 with SHA-384 only.
            if (hash == alg::SHA384) != p384 {
                continue;
            }
            let s = ec_sign(&ak, &bytes, hash);
            assert!(
                check_quote(&bytes, &s, &ak.key, &NONCE, &all_pcrs(), &p).is_ok(),
                "p384={p384}"
            );
        }
    }
    let rsa = rsa_key();
    for pss in [false, true] {
        for hash in [alg::SHA256, alg::SHA384] {
            let s = rsa_sign(&rsa, &bytes, pss, hash);
            let got = check_quote(&bytes, &s, &rsa_quote_key(&rsa), &NONCE, &all_pcrs(), &p);
            assert!(got.is_ok(), "pss={pss} hash={hash:#x}: {got:?}");
        }
    }
}

#[test]
fn rejects_a_wrong_magic_even_when_the_ak_signed_it() {
    let ak = ec_ak(false);
    let mut forged = attest(&[0, 1, 2], &NONCE);
    forged.magic = 0xff54_4348;
    let bytes = forged.encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    assert_eq!(
        check_quote(
            &bytes,
            &s,
            &ak.key,
            &NONCE,
            &all_pcrs(),
            &policy(&[0, 1, 2])
        ),
        Err(QuoteError::Magic(0xff54_4348))
    );
}

#[test]
fn rejects_a_genuine_quote_checked_against_another_selection() {
    let ak = ec_ak(false);
    let bytes = attest(&[0, 1, 2], &NONCE).encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    let wider = policy(&[0, 1, 2, 7]);
    assert_eq!(
        check_quote(&bytes, &s, &ak.key, &NONCE, &all_pcrs(), &wider),
        Err(QuoteError::Selection)
    );
}

#[test]
fn returns_only_the_pcrs_the_quote_signed() {
    let ak = ec_ak(false);
    let bytes = attest(&[0, 1, 2], &NONCE).encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    // The host reports all 24; only 0, 1 and 2 were signed.
    let quote = check_quote(
        &bytes,
        &s,
        &ak.key,
        &NONCE,
        &all_pcrs(),
        &policy(&[0, 1, 2]),
    )
    .unwrap();
    let keys: Vec<_> = quote.pcrs.0.keys().copied().collect();
    assert_eq!(
        keys,
        vec![(alg::SHA256, 0), (alg::SHA256, 1), (alg::SHA256, 2)]
    );
}

#[test]
fn rejects_a_replayed_or_reshaped_nonce() {
    let ak = ec_ak(false);
    let bytes = attest(&[0], &NONCE).encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    let p = policy(&[0]);
    let fresh = [0x11; 32];
    assert_eq!(
        check_quote(&bytes, &s, &ak.key, &fresh, &all_pcrs(), &p),
        Err(QuoteError::Nonce)
    );
    // The nonce as a prefix or padded: still refused.
    assert_eq!(
        check_quote(&bytes, &s, &ak.key, &NONCE[..31], &all_pcrs(), &p),
        Err(QuoteError::Nonce)
    );
    let padded = [&NONCE[..], &[0]].concat();
    assert_eq!(
        check_quote(&bytes, &s, &ak.key, &padded, &all_pcrs(), &p),
        Err(QuoteError::Nonce)
    );
}

#[test]
fn accepts_a_quote_over_many_pcrs() {
    let ak = ec_ak(false);
    let indices: Vec<u32> = (0..12).collect();
    let bytes = attest(&indices, &NONCE).encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    let quote = check_quote(&bytes, &s, &ak.key, &NONCE, &all_pcrs(), &policy(&indices)).unwrap();
    assert_eq!(quote.pcrs.0.len(), 12);
}

#[test]
fn rejects_altered_values_signatures_and_attestations() {
    let ak = ec_ak(false);
    let bytes = attest(&[0, 1, 2], &NONCE).encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    let p = policy(&[0, 1, 2]);

    let mut lying = all_pcrs();
    lying.0.insert((alg::SHA256, 1), vec![0; 32]);
    assert_eq!(
        check_quote(&bytes, &s, &ak.key, &NONCE, &lying, &p),
        Err(QuoteError::PcrDigest)
    );

    let mut missing = all_pcrs();
    missing.0.remove(&(alg::SHA256, 2));
    assert!(matches!(
        check_quote(&bytes, &s, &ak.key, &NONCE, &missing, &p),
        Err(QuoteError::MissingPcr { index: 2, .. })
    ));

    for at in 0..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 1;
        assert!(
            check_quote(&b, &s, &ak.key, &NONCE, &all_pcrs(), &p).is_err(),
            "byte {at}"
        );
    }
    let other = ec_ak(false);
    assert_eq!(
        check_quote(&bytes, &s, &other.key, &NONCE, &all_pcrs(), &p),
        Err(QuoteError::BadSignature)
    );
    assert!(matches!(
        check_quote(
            &bytes,
            &s,
            &rsa_quote_key(&rsa_key()),
            &NONCE,
            &all_pcrs(),
            &p
        ),
        Err(QuoteError::UnsupportedSignature(_))
    ));
}

#[test]
fn refuses_sha1_unless_policy_allows_it() {
    let rsa = rsa_key();
    let bytes = attest(&[0], &NONCE).encode();
    let mut out = vec![0u8; rsa.public().modulus_len()];
    rsa.sign(
        &sig::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &bytes,
        &mut out,
    )
    .unwrap();
    // Labelled SHA-1: refused before any verification is tried.
    let s = TpmSignature::RsaSsa {
        hash: alg::SHA1,
        sig: out,
    }
    .encode();
    let key = rsa_quote_key(&rsa);
    assert_eq!(
        check_quote(&bytes, &s, &key, &NONCE, &all_pcrs(), &policy(&[0])),
        Err(QuoteError::Sha1Refused)
    );
    // Allowed, it is then checked, and this one was not made with SHA-1.
    let lenient = QuotePolicy {
        allow_sha1: true,
        ..policy(&[0])
    };
    assert_eq!(
        check_quote(&bytes, &s, &key, &NONCE, &all_pcrs(), &lenient),
        Err(QuoteError::BadSignature)
    );
}

#[test]
fn rejects_values_resplit_across_pcrs() {
    // Same concatenation, so the same pcrDigest, but PCR 0 one byte short
    // and PCR 1 one byte long: no TPM reports that.
    let ak = ec_ak(false);
    let bytes = attest(&[0, 1], &NONCE).encode();
    let s = ec_sign(&ak, &bytes, alg::SHA256);
    let (v0, v1) = (pcr_value(0), pcr_value(1));
    let mut resplit = all_pcrs();
    resplit.0.insert((alg::SHA256, 0), v0[..31].to_vec());
    resplit
        .0
        .insert((alg::SHA256, 1), [&v0[31..], &v1[..]].concat());
    assert!(matches!(
        check_quote(&bytes, &s, &ak.key, &NONCE, &resplit, &policy(&[0, 1])),
        Err(QuoteError::PcrLength {
            index: 0,
            len: 31,
            ..
        })
    ));
}
