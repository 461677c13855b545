//! Entry encoding tests: bytes worked out by hand from RFC 8949, and every
//! way strict decoding refuses input.

use proptest::prelude::*;

use super::*;

fn raw(pairs: Vec<(Value, Value)>) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Map(pairs), &mut out).unwrap();
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn text(t: &str) -> Value {
    Value::Text(t.into())
}

/// The pairs of a minimal valid entry, to edit into invalid ones.
fn minimal_pairs() -> Vec<(Value, Value)> {
    vec![
        (int(1), int(1_700_000_000)),
        (int(2), int(5)),
        (int(5), text("a")),
        (int(6), text("")),
        (int(7), text("")),
        (int(8), Value::Map(vec![])),
        (int(9), text("")),
        (int(10), text("")),
    ]
}

fn decode_err(bytes: &[u8]) -> EntryError {
    AuditEntry::decode(bytes).unwrap_err()
}

#[test]
fn encodes_a_minimal_entry_as_worked_out_by_hand() {
    let mut entry = AuditEntry::new(1_700_000_000, EntryKind::Issued);
    entry.tenant = "a".into();
    // a8: map of 8 pairs. 01 1a 6553f100: key 1, 4-byte uint 1700000000.
    // 02 05: kind 5 (issued). 05 61 61: tenant "a". 06 60, 07 60: empty
    // site and actor. 08 a0: no digests. 09 60, 0a 60: empty key id, detail.
    let expected = hex::decode("a8011a6553f10002050561610660076008a009600a60").unwrap();
    assert_eq!(entry.encode().unwrap(), expected);
    assert_eq!(AuditEntry::decode(&expected).unwrap(), entry);
    assert_eq!(raw(minimal_pairs()), expected);
}

#[test]
fn orders_digest_names_by_their_encoded_bytes() {
    let mut entry = AuditEntry::new(-1, EntryKind::Appraised);
    entry.chip_id = Some(ChipId([0xab; 32]));
    for name in ["result", "evidence", "list"] {
        entry.digests.insert(name.into(), [name.len() as u8; 32]);
    }
    let bytes = entry.encode().unwrap();
    // 01 20: at = -1. 02 09: appraised. 03 58 20 ab..: a 32-byte chip id.
    let head = [&hex::decode("a901200209035820").unwrap()[..], &[0xab; 32]].concat();
    assert_eq!(&bytes[..head.len()], &head[..]);
    // RFC 8949 4.2.1: "list" (64 6c..) < "result" (66 72..) < "evidence" (68 65..).
    let digests = [
        &hex::decode("08a3646c6973745820").unwrap()[..],
        &[4; 32],
        &hex::decode("66726573756c745820").unwrap()[..],
        &[6; 32],
        &hex::decode("6865766964656e63655820").unwrap()[..],
        &[8; 32],
    ]
    .concat();
    let at = bytes.windows(digests.len()).position(|w| w == digests);
    assert!(at.is_some(), "digests not in deterministic order");
    assert_eq!(AuditEntry::decode(&bytes).unwrap(), entry);
}

#[test]
fn kind_codes_and_names_are_stable() {
    let table = [
        (1, "chip_enrolled"),
        (2, "host_enrolled"),
        (3, "screened"),
        (4, "screening_overridden"),
        (5, "issued"),
        (6, "refused"),
        (7, "renewed"),
        (8, "revoked"),
        (9, "appraised"),
        (10, "list_loaded"),
        (11, "rescreened"),
        (12, "hold_placed"),
        (13, "hold_lifted"),
        (14, "purged"),
    ];
    for (kind, (code, name)) in EntryKind::ALL.into_iter().zip(table) {
        assert_eq!((kind.code(), kind.name()), (code, name));
        assert_eq!(EntryKind::from_code(u64::from(code)), Some(kind));
        assert_eq!(name.parse::<EntryKind>(), Ok(kind));
        assert_eq!(kind.to_string(), name);
    }
    assert_eq!(EntryKind::from_code(0), None);
    assert_eq!(EntryKind::from_code(15), None);
    assert_eq!(
        "Issued".parse::<EntryKind>(),
        Err(EntryError::UnknownKindName {
            name: "Issued".into()
        })
    );
}

#[test]
fn refuses_input_that_is_not_an_entry_map() {
    assert!(matches!(
        decode_err(&vec![0u8; MAX_ENTRY_LEN + 1]),
        EntryError::TooLarge { .. }
    ));
    assert_eq!(decode_err(&[0xff]), EntryError::Cbor(CborError::NotCbor));
    assert_eq!(decode_err(&[]), EntryError::Cbor(CborError::NotCbor));
    assert_eq!(decode_err(&[0x80]), EntryError::Cbor(CborError::NotMap));

    let mut pairs = minimal_pairs();
    pairs.push((text("x"), int(1)));
    assert_eq!(
        decode_err(&raw(pairs)),
        EntryError::Cbor(CborError::KeyNotInteger)
    );
    let mut pairs = minimal_pairs();
    pairs.push((int(11), int(1)));
    assert_eq!(
        decode_err(&raw(pairs)),
        EntryError::Cbor(CborError::UnknownKey { key: 11 })
    );
    let mut pairs = minimal_pairs();
    pairs.insert(1, (int(1), int(1)));
    assert_eq!(
        decode_err(&raw(pairs)),
        EntryError::Cbor(CborError::DuplicateKey { key: 1 })
    );
    let mut pairs = minimal_pairs();
    pairs.remove(2);
    assert_eq!(
        decode_err(&raw(pairs)),
        EntryError::Cbor(CborError::MissingField { field: "tenant" })
    );
}

#[test]
fn refuses_fields_of_the_wrong_type_or_range() {
    let with = |key: i64, v: Value| {
        let mut pairs = minimal_pairs();
        match pairs.iter_mut().find(|(k, _)| *k == int(key)) {
            Some(slot) => slot.1 = v,
            None => pairs.push((int(key), v)),
        }
        pairs.sort_by_key(|(k, _)| i128::from(k.as_integer().unwrap()));
        decode_err(&raw(pairs))
    };
    assert!(matches!(
        with(5, Value::Bytes(b"a".to_vec())),
        EntryError::Cbor(CborError::WrongType {
            field: "tenant",
            ..
        })
    ));
    assert!(matches!(
        with(1, text("now")),
        EntryError::Cbor(CborError::WrongType { field: "at", .. })
    ));
    assert_eq!(
        with(1, Value::Integer(u64::MAX.into())),
        EntryError::Cbor(CborError::OutOfRange { field: "at" })
    );
    assert_eq!(
        with(2, int(-1)),
        EntryError::Cbor(CborError::OutOfRange { field: "kind" })
    );
    assert_eq!(with(2, int(99)), EntryError::UnknownKind { code: 99 });
    assert!(matches!(
        with(3, Value::Bytes(vec![0; 31])),
        EntryError::Cbor(CborError::WrongType {
            field: "chip_id",
            ..
        })
    ));
    assert!(matches!(
        with(8, Value::Map(vec![(int(1), Value::Bytes(vec![0; 32]))])),
        EntryError::Cbor(CborError::WrongType {
            field: "digests",
            ..
        })
    ));
    assert_eq!(
        with(10, text(&"x".repeat(MAX_DETAIL_LEN + 1))),
        EntryError::FieldTooLong {
            field: "detail",
            len: MAX_DETAIL_LEN + 1,
            max: MAX_DETAIL_LEN
        }
    );
    let many = (0..=MAX_DIGESTS)
        .map(|i| (text(&format!("d{i:02}")), Value::Bytes(vec![0; 32])))
        .collect();
    assert_eq!(
        with(8, Value::Map(many)),
        EntryError::TooManyDigests {
            count: MAX_DIGESTS + 1,
            max: MAX_DIGESTS
        }
    );
    let twice = vec![
        (text("list"), Value::Bytes(vec![0; 32])),
        (text("list"), Value::Bytes(vec![1; 32])),
    ];
    assert_eq!(
        with(8, Value::Map(twice)),
        EntryError::DigestName {
            name: "list".into()
        }
    );
}

#[test]
fn refuses_every_other_encoding_of_a_valid_entry() {
    let good = raw(minimal_pairs());

    // The 4-byte `at` written with 8 bytes (1b) instead.
    let long_int = [&good[..2], &[0x1b, 0, 0, 0, 0], &good[3..]].concat();
    let non_canonical = EntryError::Cbor(CborError::NonCanonical);
    assert_eq!(decode_err(&long_int), non_canonical);

    // Keys out of order.
    let mut pairs = minimal_pairs();
    pairs.swap(2, 3);
    assert_eq!(decode_err(&raw(pairs)), non_canonical);

    // Trailing bytes after the map.
    assert_eq!(decode_err(&[&good[..], &[0x00]].concat()), non_canonical);

    // The empty tenant as an indefinite-length string (7f ff).
    let mut pairs = minimal_pairs();
    pairs[2].1 = text("");
    let definite = raw(pairs);
    let at = definite.windows(2).position(|w| w == [0x05, 0x60]).unwrap();
    let indefinite = [&definite[..=at], &[0x7f, 0xff], &definite[at + 2..]].concat();
    assert_eq!(decode_err(&indefinite), non_canonical);
}

#[test]
fn encoding_enforces_the_same_limits() {
    let mut entry = AuditEntry::new(0, EntryKind::Purged);
    entry.actor = "x".repeat(MAX_TEXT_LEN + 1);
    assert!(matches!(
        entry.encode(),
        Err(EntryError::FieldTooLong { field: "actor", .. })
    ));
    let mut entry = AuditEntry::new(0, EntryKind::Purged);
    for i in 0..=MAX_DIGESTS {
        entry.digests.insert(format!("d{i}"), [0; 32]);
    }
    assert_eq!(
        entry.encode(),
        Err(EntryError::TooManyDigests {
            count: MAX_DIGESTS + 1,
            max: MAX_DIGESTS
        })
    );
    for bad in ["", "Evidence", "a b", &"a".repeat(MAX_DIGEST_NAME_LEN + 1)] {
        let mut entry = AuditEntry::new(0, EntryKind::Purged);
        entry.digests.insert(bad.into(), [0; 32]);
        assert!(
            matches!(entry.encode(), Err(EntryError::DigestName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn references_finds_digests_by_value() {
    let mut entry = AuditEntry::new(0, EntryKind::Issued);
    entry.digests.insert("license".into(), [7; 32]);
    assert!(entry.references(&[7; 32]));
    assert!(!entry.references(&[8; 32]));
    let bytes = entry.encode().unwrap();
    assert_eq!(
        entry.leaf_hash().unwrap(),
        ring::digest::digest(&ring::digest::SHA256, &[&[0u8][..], &bytes].concat()).as_ref()
    );
}

fn arb_entry() -> impl Strategy<Value = AuditEntry> {
    let ids = (
        proptest::option::of(any::<[u8; 32]>()),
        proptest::option::of(any::<[u8; 16]>()),
    );
    let texts = (
        "\\PC{0,40}",
        "[a-z0-9-]{0,12}",
        "\\PC{0,20}",
        "[0-9a-f]{0,16}",
        "\\PC{0,200}",
    );
    let digests = proptest::collection::btree_map("[a-z_]{1,20}", any::<[u8; 32]>(), 0..6);
    (any::<i64>(), 0..EntryKind::ALL.len(), ids, texts, digests).prop_map(
        |(at, k, (chip, token), (tenant, site_id, actor, key_id, detail), digests)| AuditEntry {
            at,
            kind: EntryKind::ALL[k],
            chip_id: chip.map(ChipId),
            token_id: token.map(TokenId),
            tenant,
            site_id,
            actor,
            digests,
            key_id,
            detail,
        },
    )
}

proptest! {
    #[test]
    fn every_entry_round_trips_through_its_one_encoding(entry in arb_entry()) {
        let bytes = entry.encode().unwrap();
        prop_assert_eq!(AuditEntry::decode(&bytes).unwrap(), entry);
    }

    #[test]
    fn no_byte_flip_decodes_to_the_same_entry(entry in arb_entry(), at in any::<usize>(), bit in 0u8..8) {
        let mut bytes = entry.encode().unwrap();
        let at = at % bytes.len();
        bytes[at] ^= 1 << bit;
        if let Ok(other) = AuditEntry::decode(&bytes) {
            prop_assert_ne!(other, entry);
        }
    }
}
