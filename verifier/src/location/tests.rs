//! The location claim from records made as landmarks and chips make them.

use chipward_certs::keys::{Ed25519Key, P384Key};
use chipward_proto::landmark::{self, MeasurementRecord};
use chipward_proto::result::Status;

use super::records::{Landmark, Landmarks};
use super::*;
use crate::claims::code;

const NOW: i64 = 1_800_000_000_000;
const BINDING: [u8; 32] = [0x42; 32];

struct World {
    keys: Vec<(Ed25519Key, Landmark)>,
    landmarks: Landmarks,
    alias: P384Key,
    chip: String,
}

fn world(places: &[(f64, f64)]) -> World {
    let mut keys = Vec::new();
    let mut landmarks = Landmarks::default();
    for (i, (lat, lon)) in places.iter().enumerate() {
        let key = Ed25519Key::generate().unwrap();
        let lm = Landmark {
            id: format!("lm-{i}"),
            position: Point::new(*lat, *lon).unwrap(),
            public_key: key.public_key(),
        };
        landmarks = landmarks.with(&key.key_id(), lm.clone());
        keys.push((key, lm));
    }
    World {
        keys,
        landmarks,
        alias: P384Key::generate().unwrap(),
        chip: "ab".repeat(32),
    }
}

fn record(w: &World, which: usize, rtt_ns: u64) -> Vec<u8> {
    let (key, lm) = &w.keys[which];
    let (secret, challenge) = ([3u8; 32], [5u8; 32]);
    let response: Vec<u8> = challenge.iter().zip(&secret).map(|(c, s)| c ^ s).collect();
    let commitment = landmark::commitment(&secret);
    let transcript = landmark::transcript(&lm.id, &BINDING, &commitment, &challenge, &response);
    MeasurementRecord {
        landmark_id: lm.id.clone(),
        latitude: lm.position.latitude,
        longitude: lm.position.longitude,
        chip_id: w.chip.clone(),
        binding: hex::encode(BINDING),
        rtt_ns,
        measured_at_ms: NOW - 10,
        commitment: hex::encode(commitment),
        challenge: hex::encode(challenge),
        response: hex::encode(&response),
        secret: hex::encode(secret),
        chip_signature: hex::encode(w.alias.sign_fixed(&transcript).unwrap()),
    }
    .sign(&key.key_id(), |m| key.sign(m))
}

fn claim(w: &World, records: &[Vec<u8>], site: Cap) -> chipward_proto::result::ClaimResult {
    let spki = w.alias.public_key_spki_der();
    let input = LocationInput {
        chip_id: &w.chip,
        alias_spki: &spki,
        binding: &BINDING,
        site,
        now_ms: NOW,
        max_age_ms: 60_000,
    };
    location_claim(records, &w.landmarks, &input).claim
}

/// Frankfurt, licensed for 50 km.
fn site() -> Cap {
    Cap {
        center: Point::new(50.1109, 8.6821).unwrap(),
        radius_km: 50.0,
    }
}

#[test]
fn nearby_landmarks_with_short_round_trips_certify_the_site() {
    // Three landmarks about 5 km out; 0.1 ms round trips: caps of 15 km.
    let w = world(&[(50.155, 8.6821), (50.0885, 8.63), (50.0885, 8.735)]);
    let records: Vec<Vec<u8>> = (0..3).map(|i| record(&w, i, 100_000)).collect();
    let c = claim(&w, &records, site());
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.reason.starts_with("within "), "{c:?}");
}

#[test]
fn a_landmark_abroad_with_a_short_round_trip_places_the_chip_outside() {
    // Paris, 479 km away, answered in 0.2 ms: the chip is within 30 km of Paris.
    let w = world(&[(48.8566, 2.3522)]);
    let c = claim(&w, &[record(&w, 0, 200_000)], site());
    assert_eq!(
        (c.status, c.code.as_str()),
        (Status::Fail, code::LOCATION_OUTSIDE),
        "{c:?}"
    );
}

#[test]
fn long_round_trips_leave_the_location_undecided() {
    // 2 ms from a landmark at the site: anywhere within 300 km.
    let w = world(&[(50.1109, 8.6821)]);
    let c = claim(&w, &[record(&w, 0, 2_000_000)], site());
    assert_eq!(
        (c.status, c.code.as_str()),
        (Status::Unknown, code::LOCATION_UNCERTAIN),
        "{c:?}"
    );
    assert!(c.reason.contains("299.8"), "{c:?}");
}

#[test]
fn one_refused_record_fails_the_claim() {
    let w = world(&[(50.155, 8.6821), (50.0885, 8.63)]);
    let mut bad = record(&w, 1, 100_000);
    let at = bad.len() - 3;
    bad[at] ^= 1;
    let c = claim(&w, &[record(&w, 0, 100_000), bad], site());
    assert_eq!(
        (c.status, c.code.as_str()),
        (Status::Fail, code::LOCATION_RECORD),
        "{c:?}"
    );
    assert!(c.reason.starts_with("landmark record 1 refused"), "{c:?}");
}

#[test]
fn reads_landmarks_from_toml_and_refuses_bad_entries() {
    let key = Ed25519Key::generate().unwrap();
    let text = format!(
        "[[landmark]]\nid = \"fra-lm-1\"\nlatitude = 50.1\nlongitude = 8.6\npublic_key = \"{}\"\n",
        hex::encode(key.public_key())
    );
    let parsed = Landmarks::from_toml(&text).unwrap();
    let w = World {
        keys: vec![],
        landmarks: parsed,
        alias: P384Key::generate().unwrap(),
        chip: "ab".repeat(32),
    };
    // A record from an unenrolled key is refused, so the parsed set is in use.
    let stranger = world(&[(50.1, 8.6)]);
    let c = claim(&w, &[record(&stranger, 0, 1)], site());
    assert_eq!(c.code, code::LOCATION_RECORD);

    assert!(
        Landmarks::from_toml(
            "[[landmark]]\nid = \"x\"\nlatitude = 91.0\nlongitude = 0.0\npublic_key = \"00\"\n"
        )
        .is_err()
    );
    assert!(Landmarks::from_toml("[[landmark]]\nid = \"x\"\n").is_err());
}

#[test]
fn the_outcome_carries_the_bound_the_claim_states() {
    // One landmark at the site's centre, 2 ms: the chip is at most
    // 1 ms x 299.792458 km/ms = 299.79 km away in a straight line, a little
    // more along the sphere, and nothing bounds it from below.
    let w = world(&[(50.1109, 8.6821)]);
    let spki = w.alias.public_key_spki_der();
    let input = LocationInput {
        chip_id: &w.chip,
        alias_spki: &spki,
        binding: &BINDING,
        site: site(),
        now_ms: NOW,
        max_age_ms: 60_000,
    };
    let out = location_claim(&[record(&w, 0, 2_000_000)], &w.landmarks, &input);
    let bound = out.bound.unwrap();
    assert_eq!(
        (bound.latitude, bound.longitude, bound.radius_km),
        (50.1109, 8.6821, 50.0)
    );
    assert_eq!(bound.nearest_km, Some(0.0));
    let far = bound.farthest_km.unwrap();
    assert!((299.79..300.5).contains(&far), "{far}");

    // Paris (479 km from Frankfurt by great circle) answering in 0.2 ms:
    // the chip is within 30 km of Paris, so at least ~449 km from the site.
    let w = world(&[(48.8566, 2.3522)]);
    let spki = w.alias.public_key_spki_der();
    let input = LocationInput {
        alias_spki: &spki,
        chip_id: &w.chip,
        ..input
    };
    let out = location_claim(&[record(&w, 0, 200_000)], &w.landmarks, &input);
    let bound = out.bound.unwrap();
    assert_eq!(bound.farthest_km, None);
    let near = bound.nearest_km.unwrap();
    assert!((447.0..451.0).contains(&near), "{near}");

    // A refused record gives no bound.
    let mut bad = record(&w, 0, 200_000);
    let at = bad.len() - 3;
    bad[at] ^= 1;
    assert!(location_claim(&[bad], &w.landmarks, &input).bound.is_none());
}
