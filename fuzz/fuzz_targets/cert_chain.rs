//! Certificate chains as chips and TPMs present them. The first byte,
//! modulo 3, picks the entry point for the rest:
//!
//! - 0: a chip chain, split into up to four certificates by the crate's
//!   length-prefix framing, [`validate_chain`] to the committed development
//!   vendor root;
//! - 1: an EK chain, framed the same way, [`validate_ek_chain`] to the
//!   committed swtpm EK root or that vendor root;
//! - 2: PEM text, [`pem::parse_certificates`], then the certificates it
//!   yields as a chip chain.
//!
//! Each must refuse bad input with an error, and what validates is the
//! input: the leaf as given (NV padding aside), no more certificates than
//! given.

#![no_main]

use std::sync::LazyLock;

use chipward_certs::chain::{ChainPolicy, TrustAnchor, validate_chain, validate_ek_chain};
use chipward_certs::pem;
use chipward_fuzz::{NOW_UNIX, split_certs};
use libfuzzer_sys::fuzz_target;

/// Root of the development PKI the seed chip chains end at.
const CHIP_ROOT: &[u8] = include_bytes!("../data/chip-root.der");
/// Root of swtpm's local CA, which the seed EK chains end at.
const EK_ROOT: &[u8] = include_bytes!("../data/ek-root.der");

static CHIP_ANCHOR: LazyLock<TrustAnchor> =
    LazyLock::new(|| TrustAnchor::from_der(CHIP_ROOT).expect("the committed chip root parses"));
static EK_ANCHORS: LazyLock<[TrustAnchor; 2]> = LazyLock::new(|| {
    let ek = TrustAnchor::from_der(EK_ROOT).expect("the committed ek root parses");
    [ek, CHIP_ANCHOR.clone()]
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => chip_chain(&split_certs(rest)),
        1 => ek_chain(&split_certs(rest)),
        _ => pem_chain(rest),
    }
});

fn chip_chain(certs: &[Vec<u8>]) {
    let policy = ChainPolicy::default();
    let Ok(chain) = validate_chain(certs, &CHIP_ANCHOR, NOW_UNIX, &policy) else {
        return;
    };
    assert!(!chain.certs().is_empty() && chain.certs().len() <= certs.len());
    assert_eq!(chain.leaf().der(), &certs[0][..]);
}

fn ek_chain(certs: &[Vec<u8>]) {
    let policy = ChainPolicy::default();
    let Ok(chain) = validate_ek_chain(certs, &*EK_ANCHORS, NOW_UNIX, &policy) else {
        return;
    };
    assert!(!chain.certs().is_empty() && chain.certs().len() <= certs.len());
    assert!(chain.anchor_index() < EK_ANCHORS.len());
    let leaf = &certs[0];
    let (der, padding) = leaf.split_at(leaf.len() - chain.padding_len());
    assert_eq!(chain.ek_cert().der(), der);
    assert!(padding.iter().all(|&b| b == 0xFF));
}

fn pem_chain(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let Ok(ders) = pem::parse_certificates(&text) else {
        return;
    };
    assert!(!ders.is_empty());
    let again: String = ders
        .iter()
        .map(|der| pem::certificate_to_pem(der))
        .collect();
    assert_eq!(pem::parse_certificates(&again).ok().as_ref(), Some(&ders));
    chip_chain(&ders);
}
