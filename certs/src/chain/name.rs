//! Checks that an X.501 Name was read to its last byte.
//!
//! Names are compared byte for byte (issuer against signer subject), so what x509-parser
//! kept of a name must be all of it. x509-parser stops at the first RDN or attribute it
//! cannot read and silently drops the rest of the enclosing SEQUENCE or SET, and the name's
//! `as_raw` then ends where reading stopped. Attacker-controlled input: every name in a
//! peer certificate. Nothing here re-encodes or reorders; SET members may be in any order.

use x509_parser::der_parser::asn1_rs::{Any, FromDer as _, Tag};

/// Whether `raw` is one whole Name: a SEQUENCE of non-empty SETs of
/// `SEQUENCE { OID, value }`, every TLV complete and nothing after the last one.
pub(super) fn is_whole(raw: &[u8]) -> bool {
    let Ok(([], name)) = Any::from_der(raw) else {
        return false;
    };
    name.tag() == Tag::Sequence
        && elements(name.data).is_some_and(|rdns| rdns.iter().all(rdn_is_whole))
}

/// A RelativeDistinguishedName: a non-empty SET of AttributeTypeAndValue.
fn rdn_is_whole(rdn: &Any<'_>) -> bool {
    rdn.tag() == Tag::Set
        && elements(rdn.data)
            .is_some_and(|atvs| !atvs.is_empty() && atvs.iter().all(attribute_is_whole))
}

/// An AttributeTypeAndValue: `SEQUENCE { OID, value }` and nothing else.
fn attribute_is_whole(atv: &Any<'_>) -> bool {
    atv.tag() == Tag::Sequence
        && elements(atv.data).is_some_and(|parts| parts.len() == 2 && parts[0].tag() == Tag::Oid)
}

/// Every TLV in `content`, if `content` is nothing but whole TLVs.
fn elements(mut content: &[u8]) -> Option<Vec<Any<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (rest, element) = Any::from_der(content).ok()?;
        out.push(element);
        content = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use x509_parser::x509::X509Name;

    use super::*;

    /// `SEQUENCE { OID 2.5.4.3, UTF8String "a" }`.
    const CN_A: [u8; 10] = [0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, 0x61];

    fn name_of(rdns: &[&[u8]]) -> Vec<u8> {
        let content = rdns.concat();
        [&[0x30, u8::try_from(content.len()).unwrap()][..], &content].concat()
    }

    fn set_of(atvs: &[&[u8]]) -> Vec<u8> {
        let content = atvs.concat();
        [&[0x31, u8::try_from(content.len()).unwrap()][..], &content].concat()
    }

    #[test]
    fn accepts_empty_and_multi_valued_names_in_any_order() {
        let other = [0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, 0x62];
        assert!(is_whole(&[0x30, 0x00]));
        assert!(is_whole(&name_of(&[&set_of(&[&CN_A])])));
        assert!(is_whole(&name_of(&[&set_of(&[&other, &CN_A])])));
        assert!(is_whole(&name_of(&[&set_of(&[&CN_A, &other])])));
    }

    #[test]
    fn refuses_names_with_content_x509_parser_would_drop() {
        let with_tail = [&CN_A[..], &[0x05, 0x00]].concat();
        let atv_with_tail = [&[0x30, 0x0a], &CN_A[2..], &[0x05, 0x00]].concat();
        let cases = [
            name_of(&[&set_of(&[])]),
            name_of(&[&set_of(&[&CN_A]), &[0x05, 0x00]]),
            name_of(&[&set_of(&[&with_tail])]),
            name_of(&[&set_of(&[&atv_with_tail])]),
            name_of(&[&set_of(&[&CN_A[..9]])]),
        ];

        for raw in &cases {
            assert!(!is_whole(raw), "{raw:02x?}");
        }
        // What x509-parser makes of the first: an empty name whose raw bytes stop early.
        let (_, parsed) = X509Name::from_der(&cases[0]).unwrap();
        assert_eq!(parsed.iter().count(), 0);
        assert_eq!(parsed.as_raw(), &[0x30, 0x02]);
    }
}
