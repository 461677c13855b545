//! Records made here the way a landmark and a chip make them, then each
//! check broken in turn.

use chipward_certs::keys::{Ed25519Key, P384Key};

use super::*;

const NOW: i64 = 1_800_000_000_000;
const BINDING: [u8; 32] = [0x42; 32];

struct Setup {
    landmark_key: Ed25519Key,
    landmarks: Landmarks,
    alias: P384Key,
    chip_id: String,
}

fn setup() -> Setup {
    let landmark_key = Ed25519Key::generate().unwrap();
    let position = Point::new(50.1109, 8.6821).unwrap();
    let landmark = Landmark {
        id: "fra-lm-1".into(),
        position,
        public_key: landmark_key.public_key(),
    };
    let landmarks = Landmarks::default().with(&landmark_key.key_id(), landmark);
    Setup {
        landmark_key,
        landmarks,
        alias: P384Key::generate().unwrap(),
        chip_id: "ab".repeat(32),
    }
}

/// A genuine record: the chip commits, answers, reveals and signs.
fn record(s: &Setup, rtt_ns: u64, edit: impl FnOnce(&mut MeasurementRecord)) -> Vec<u8> {
    let secret = [7u8; 32];
    let challenge = [9u8; 32];
    let response: Vec<u8> = challenge.iter().zip(&secret).map(|(c, k)| c ^ k).collect();
    let commitment = landmark::commitment(&secret);
    let transcript = landmark::transcript("fra-lm-1", &BINDING, &commitment, &challenge, &response);
    let mut r = MeasurementRecord {
        landmark_id: "fra-lm-1".into(),
        latitude: 50.1109,
        longitude: 8.6821,
        chip_id: s.chip_id.clone(),
        binding: hex::encode(BINDING),
        rtt_ns,
        measured_at_ms: NOW - 1_000,
        commitment: hex::encode(commitment),
        challenge: hex::encode(challenge),
        response: hex::encode(&response),
        secret: hex::encode(secret),
        chip_signature: hex::encode(s.alias.sign_fixed(&transcript).unwrap()),
    };
    edit(&mut r);
    r.sign(&s.landmark_key.key_id(), |m| s.landmark_key.sign(m))
}

fn check(s: &Setup, bytes: &[u8]) -> Result<Cap, RecordRejection> {
    s.landmarks.check(
        bytes,
        &s.chip_id,
        &s.alias.public_key_spki_der(),
        &BINDING,
        NOW,
        60_000,
    )
}

#[test]
fn a_genuine_record_gives_the_light_speed_cap() {
    let s = setup();
    // 2 ms round trip: a chord of 299.792 km, arc 299.8201 km.
    let cap = check(&s, &record(&s, 2_000_000, |_| {})).unwrap();
    assert!(
        (cap.radius_km - 299.8201).abs() < 0.001,
        "{}",
        cap.radius_km
    );
    assert_eq!(cap.center, Point::new(50.1109, 8.6821).unwrap());
}

#[test]
fn refuses_records_from_strangers_or_other_places() {
    let s = setup();
    let stranger = Ed25519Key::generate().unwrap();
    let mut r = MeasurementRecord::clone(
        &landmark::verify(&record(&s, 1, |_| {}), &s.landmarks.keys)
            .unwrap()
            .0,
    );
    r.rtt_ns = 1;
    let forged = r.sign(&s.landmark_key.key_id(), |m| stranger.sign(m));
    assert!(matches!(
        check(&s, &forged),
        Err(RecordRejection::Envelope(_))
    ));

    let moved = record(&s, 1, |r| r.latitude = 48.8566);
    assert!(matches!(
        check(&s, &moved),
        Err(RecordRejection::Landmark { .. })
    ));
    let renamed = record(&s, 1, |r| r.landmark_id = "par-lm-1".into());
    assert!(matches!(
        check(&s, &renamed),
        Err(RecordRejection::Landmark { .. })
    ));
}

#[test]
fn refuses_records_for_another_chip_appraisal_or_time() {
    let s = setup();
    assert_eq!(
        check(&s, &record(&s, 1, |r| r.chip_id = "cd".repeat(32))),
        Err(RecordRejection::Chip)
    );
    // A record replayed from another appraisal carries another binding.
    assert_eq!(
        check(&s, &record(&s, 1, |r| r.binding = "00".repeat(32))),
        Err(RecordRejection::Binding)
    );
    assert!(matches!(
        check(&s, &record(&s, 1, |r| r.measured_at_ms = NOW - 61_000)),
        Err(RecordRejection::Stale { .. })
    ));
    assert!(matches!(
        check(&s, &record(&s, 1, |r| r.measured_at_ms = NOW + 5)),
        Err(RecordRejection::Stale { .. })
    ));
}

#[test]
fn refuses_absurd_round_trips_and_inconsistent_exchanges() {
    let s = setup();
    assert_eq!(
        check(&s, &record(&s, MAX_RTT_NS + 1, |_| {})),
        Err(RecordRejection::RoundTrip(MAX_RTT_NS + 1))
    );
    assert_eq!(
        check(&s, &record(&s, u64::MAX, |_| {})),
        Err(RecordRejection::RoundTrip(u64::MAX))
    );
    // A relay that guessed the response, or revealed another secret.
    assert_eq!(
        check(&s, &record(&s, 1, |r| r.response = "00".repeat(32))),
        Err(RecordRejection::Exchange)
    );
    assert_eq!(
        check(&s, &record(&s, 1, |r| r.secret = "01".repeat(32))),
        Err(RecordRejection::Exchange)
    );
    assert_eq!(
        check(&s, &record(&s, 1, |r| r.challenge = "zz".into())),
        Err(RecordRejection::Exchange)
    );
    // The chip's signature no longer covers the exchange.
    assert_eq!(
        check(&s, &record(&s, 1, |r| r.chip_signature = "00".repeat(96))),
        Err(RecordRejection::ChipSignature)
    );
    // Signed by another chip's key.
    let other = P384Key::generate().unwrap();
    let bytes = record(&s, 1, |_| {});
    assert_eq!(
        s.landmarks.check(
            &bytes,
            &s.chip_id,
            &other.public_key_spki_der(),
            &BINDING,
            NOW,
            60_000
        ),
        Err(RecordRejection::ChipSignature)
    );
}

#[test]
fn refuses_garbage_without_panicking() {
    let s = setup();
    for bytes in [&b""[..], b"garbage", &[0xd2; 5000]] {
        assert!(check(&s, bytes).is_err());
    }
}
