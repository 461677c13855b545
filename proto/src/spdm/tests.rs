use proptest::prelude::*;

use super::*;

fn request() -> MeasurementsRequest {
    MeasurementsRequest {
        attributes: 1,
        operation: 0xFF,
        nonce: [0x11; 32],
        slot_id: 0,
    }
}

fn response(blocks: Vec<MeasurementBlock>) -> MeasurementsResponse {
    MeasurementsResponse {
        param1: 0,
        param2: 0,
        blocks,
        nonce: [0x22; 32],
        opaque: vec![1, 2, 3],
    }
}

fn digest_block(index: u8, fill: u8) -> MeasurementBlock {
    MeasurementBlock {
        index,
        spec: DMTF_SPEC,
        value_type: 1,
        value: vec![fill; 48],
    }
}

fn signed(blocks: Vec<MeasurementBlock>) -> Vec<u8> {
    UnsignedTranscript::new(&request(), &response(blocks)).finish(&[0x5a; 96])
}

#[test]
fn encodes_the_byte_layout_of_dsp0274() {
    let bytes = signed(vec![digest_block(1, 0xaa)]);

    // Request: version, code, attributes, operation, nonce, slot.
    assert_eq!(&bytes[..4], &[0x11, 0xE0, 0x01, 0xFF]);
    assert_eq!(bytes[36], 0);
    // Response header, one block, a 55-byte record (4 + 3 + 48).
    assert_eq!(&bytes[37..45], &[0x11, 0x60, 0, 0, 1, 55, 0, 0]);
    // Block: index 1, DMTF, size 51, type 1, value size 48.
    assert_eq!(&bytes[45..52], &[1, 1, 51, 0, 1, 48, 0]);
    // Total: request 37 + header 8 + record 55 + nonce 32 + opaque 2+3 + sig 96.
    assert_eq!(bytes.len(), 37 + 8 + 55 + 32 + 5 + 96);
}

#[test]
fn parses_what_it_encodes() {
    let blocks = vec![digest_block(1, 0xaa), digest_block(2, 0xbb)];
    let bytes = signed(blocks.clone());
    let t = Transcript::parse(&bytes).unwrap();
    assert_eq!(t.request, request());
    assert_eq!(t.response.blocks, blocks);
    assert_eq!(t.signed_len, bytes.len() - 96);
    assert_eq!(t.signature, [0x5a; 96]);
    assert_eq!(t.block(2).unwrap().value, vec![0xbb; 48]);
}

#[test]
fn rejects_every_truncation() {
    let bytes = signed(vec![digest_block(1, 0xaa)]);
    for len in 0..bytes.len() {
        assert!(
            Transcript::parse(&bytes[..len]).is_err(),
            "accepted {len} bytes"
        );
    }
}

#[test]
fn rejects_trailing_bytes() {
    let mut bytes = signed(vec![digest_block(1, 0xaa)]);
    bytes.push(0);
    assert_eq!(Transcript::parse(&bytes), Err(SpdmError::TrailingBytes(1)));
}

#[test]
fn rejects_wrong_versions_codes_and_unsigned_requests() {
    let good = signed(vec![digest_block(1, 0xaa)]);
    let with = |at: usize, value: u8| {
        let mut b = good.clone();
        b[at] = value;
        Transcript::parse(&b)
    };
    assert_eq!(with(0, 0x12), Err(SpdmError::Version(0x12)));
    assert!(matches!(
        with(1, 0x81),
        Err(SpdmError::Code { found: 0x81, .. })
    ));
    assert_eq!(with(2, 0), Err(SpdmError::Unsigned));
    assert!(matches!(
        with(37, 0x10),
        Err(SpdmError::VersionMismatch { .. })
    ));
    assert!(matches!(
        with(38, 0x61),
        Err(SpdmError::Code { found: 0x61, .. })
    ));
    assert_eq!(
        with(41, 2),
        Err(SpdmError::BlockCount {
            announced: 2,
            found: 1
        })
    );
}

#[test]
fn rejects_inconsistent_and_duplicate_blocks() {
    let mut bytes = signed(vec![digest_block(1, 0xaa)]);
    bytes[50] = 47; // inner value size no longer matches the outer size
    assert_eq!(
        Transcript::parse(&bytes),
        Err(SpdmError::BlockSize { index: 1 })
    );

    let dup = signed(vec![digest_block(3, 0xaa), digest_block(3, 0xbb)]);
    assert_eq!(Transcript::parse(&dup), Err(SpdmError::DuplicateIndex(3)));
}

#[test]
fn rejects_partial_operations_other_slots_reserved_indices_and_other_layouts() {
    let good = signed(vec![digest_block(1, 0xaa)]);
    let with = |at: usize, value: u8| {
        let mut b = good.clone();
        b[at] = value;
        Transcript::parse(&b)
    };
    assert_eq!(with(3, 0x00), Err(SpdmError::Operation(0)));
    assert_eq!(with(3, 0x01), Err(SpdmError::Operation(1)));
    assert_eq!(
        with(40, 0x01),
        Err(SpdmError::SlotMismatch {
            request: 0,
            response: 1
        })
    );
    assert_eq!(with(45, 0x00), Err(SpdmError::ReservedIndex(0)));
    assert_eq!(with(45, 0xFF), Err(SpdmError::ReservedIndex(0xFF)));
    assert_eq!(
        with(46, 0x81),
        Err(SpdmError::NotDmtf {
            index: 1,
            spec: 0x81
        })
    );
    assert_eq!(
        with(46, 0x00),
        Err(SpdmError::NotDmtf { index: 1, spec: 0 })
    );
}

#[test]
fn rejects_oversized_input_before_parsing() {
    let bytes = vec![0u8; MAX_TRANSCRIPT_LEN + 1];
    assert_eq!(
        Transcript::parse(&bytes),
        Err(SpdmError::TooLong(MAX_TRANSCRIPT_LEN + 1))
    );
}

proptest! {
    #[test]
    fn round_trips_any_blocks(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..20)) {
        let blocks: Vec<_> = values.into_iter().enumerate().map(|(i, value)| MeasurementBlock {
            index: i as u8 + 1, spec: DMTF_SPEC, value_type: 2, value,
        }).collect();
        let bytes = signed(blocks.clone());
        prop_assert_eq!(Transcript::parse(&bytes).unwrap().response.blocks, blocks);
    }

    #[test]
    fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Transcript::parse(&bytes);
    }
}
