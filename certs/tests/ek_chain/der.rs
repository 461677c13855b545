//! A small DER writer for certificates rcgen cannot express: names whose multi-valued RDN
//! SET is written in a chosen order (rcgen re-encodes an issuer name from its parsed form).
//! Certificates are signed with a ring P-384 key over the TBS bytes built here, so the
//! signature covers the odd encoding exactly as written.

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

/// id-at-commonName.
pub(crate) const CN: &[u32] = &[2, 5, 4, 3];
/// id-at-organizationName.
pub(crate) const ORG: &[u32] = &[2, 5, 4, 10];
/// id-at-countryName.
pub(crate) const COUNTRY: &[u32] = &[2, 5, 4, 6];
/// tcg-at-tpmManufacturer.
pub(crate) const TPM_MANUFACTURER: &[u32] = &[2, 23, 133, 2, 1];
/// tcg-at-tpmModel.
pub(crate) const TPM_MODEL: &[u32] = &[2, 23, 133, 2, 2];
/// tcg-at-tpmVersion.
pub(crate) const TPM_VERSION: &[u32] = &[2, 23, 133, 2, 3];

/// One TLV with a definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already encoded parts.
pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A SET of already encoded parts, in exactly the order given (DER or not).
pub(crate) fn set_as_given(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

/// The parts in DER SET OF order (X.690 section 11.6: ascending as octet strings, the
/// shorter one padded at its end with zeros).
pub(crate) fn der_order<'a>(parts: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut sorted = parts.to_vec();
    sorted.sort_by(|a, b| {
        let width = a.len().max(b.len());
        let padded = |x: &[u8]| [x, &vec![0; width - x.len()]].concat();
        padded(a).cmp(&padded(b))
    });
    sorted
}

/// An OBJECT IDENTIFIER.
pub(crate) fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut content = Vec::new();
    let first = arcs[0] * 40 + arcs[1];
    for arc in std::iter::once(first).chain(arcs[2..].iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        content.extend(groups.into_iter().rev());
    }
    tlv(0x06, &content)
}

/// A UTF8String.
pub(crate) fn utf8(text: &str) -> Vec<u8> {
    tlv(0x0c, text.as_bytes())
}

/// A PrintableString.
pub(crate) fn printable(text: &str) -> Vec<u8> {
    tlv(0x13, text.as_bytes())
}

/// An AttributeTypeAndValue.
pub(crate) fn attribute(arcs: &[u32], value: &[u8]) -> Vec<u8> {
    seq(&[&oid(arcs), value])
}

/// A Name from RDN SETs already encoded.
pub(crate) fn name(rdns: &[&[u8]]) -> Vec<u8> {
    seq(rdns)
}

/// An Extension; the value is wrapped in its OCTET STRING here.
pub(crate) fn extension(arcs: &[u32], critical: bool, value: &[u8]) -> Vec<u8> {
    let flag = if critical {
        tlv(0x01, &[0xff])
    } else {
        Vec::new()
    };
    seq(&[&oid(arcs), &flag, &tlv(0x04, value)])
}

/// basicConstraints cA=TRUE (critical) and keyUsage keyCertSign + cRLSign (critical).
pub(crate) fn ca_extensions() -> Vec<Vec<u8>> {
    vec![
        extension(&[2, 5, 29, 19], true, &seq(&[&tlv(0x01, &[0xff])])),
        extension(&[2, 5, 29, 15], true, &tlv(0x03, &[0x01, 0x06])),
    ]
}

/// basicConstraints cA=FALSE and keyUsage keyAgreement, both critical, as an ECC EK has.
pub(crate) fn ek_extensions() -> Vec<Vec<u8>> {
    vec![
        extension(&[2, 5, 29, 19], true, &seq(&[])),
        extension(&[2, 5, 29, 15], true, &tlv(0x03, &[0x03, 0x08])),
    ]
}

/// A subjectAltName value holding one directoryName.
pub(crate) fn directory_name_san(directory_name: &[u8]) -> Vec<u8> {
    seq(&[&tlv(0xa4, directory_name)])
}

/// A P-384 key that signs with ECDSA / SHA-384.
pub(crate) struct EcKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl EcKey {
    /// A fresh key.
    pub(crate) fn generate() -> Self {
        let rng = SystemRandom::new();
        let alg = &ECDSA_P384_SHA384_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        Self { pair, rng }
    }

    /// The SubjectPublicKeyInfo, DER.
    pub(crate) fn spki(&self) -> Vec<u8> {
        let algorithm = seq(&[&oid(&[1, 2, 840, 10045, 2, 1]), &oid(&[1, 3, 132, 0, 34])]);
        let point = [&[0x00][..], self.pair.public_key().as_ref()].concat();
        seq(&[&algorithm, &tlv(0x03, &point)])
    }
}

/// The parts of a TBSCertificate that tests vary; the rest is fixed: v3, ecdsa-with-SHA384,
/// valid from 2025-01-01 to 9999-12-31.
pub(crate) struct Tbs<'a> {
    pub(crate) serial: u8,
    pub(crate) issuer: &'a [u8],
    pub(crate) subject: &'a [u8],
    pub(crate) spki: &'a [u8],
    pub(crate) extensions: Vec<Vec<u8>>,
}

impl Tbs<'_> {
    /// The TBSCertificate, DER.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let version = tlv(0xa0, &tlv(0x02, &[0x02]));
        let validity = seq(&[&tlv(0x17, b"250101000000Z"), &tlv(0x18, b"99991231235959Z")]);
        let extensions: Vec<&[u8]> = self.extensions.iter().map(Vec::as_slice).collect();
        seq(&[
            &version,
            &tlv(0x02, &[self.serial]),
            &ecdsa_with_sha384(),
            self.issuer,
            &validity,
            self.subject,
            self.spki,
            &tlv(0xa3, &seq(&extensions)),
        ])
    }

    /// The certificate: this TBS signed by `key`.
    pub(crate) fn sign(&self, key: &EcKey) -> Vec<u8> {
        let tbs = self.encode();
        let signature = key.pair.sign(&key.rng, &tbs).unwrap();
        let bits = [&[0x00][..], signature.as_ref()].concat();
        seq(&[&tbs, &ecdsa_with_sha384(), &tlv(0x03, &bits)])
    }
}

/// The AlgorithmIdentifier ecdsa-with-SHA384, without parameters.
fn ecdsa_with_sha384() -> Vec<u8> {
    seq(&[&oid(&[1, 2, 840, 10045, 4, 3, 3])])
}

/// Where `needle` starts in `haystack`; panics when absent.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the encoding is in the certificate")
}
