//! Each fleet pattern, on sightings placed at real sites. Distances are
//! checked against figures worked out apart from the code: Frankfurt to
//! Singapore is about 10,260 km and Frankfurt to Dublin about 1,090 km by
//! great circle.

use chipward_certs::keys::Ed25519Key;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::result::{self, ClaimResult, LocationBound};

use super::*;

const FRA: (f64, f64) = (50.1109, 8.6821);
const SIN: (f64, f64) = (1.3521, 103.8198);
const DUB: (f64, f64) = (53.3498, -6.2603);
const HOUR: i64 = 3_600;

fn point((lat, lon): (f64, f64)) -> Point {
    Point::new(lat, lon).unwrap()
}

fn claimed(chip: &str, site: &str, at: (f64, f64), tenant: &str, t: i64) -> Sighting {
    Sighting {
        chip_id: chip.into(),
        tenant: tenant.into(),
        site_id: site.into(),
        at: t,
        place: Some(Place {
            center: point(at),
            nearest_km: 0.0,
            farthest_km: 50.0,
            measured: false,
        }),
    }
}

fn by_landmarks(chip: &str, site: &str, at: (f64, f64), t: i64, within_km: f64) -> Sighting {
    Sighting {
        place: Some(Place {
            center: point(at),
            nearest_km: 0.0,
            farthest_km: within_km,
            measured: true,
        }),
        ..claimed(chip, site, at, "acme", t)
    }
}

fn kinds(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(Finding::kind).collect()
}

#[test]
fn a_steady_chip_raises_nothing() {
    let day: Vec<Sighting> = (0..24)
        .map(|h| by_landmarks("aa", "fra-1", FRA, h * HOUR, 10.0))
        .collect();
    let settings = WatchSettings::default();
    assert_eq!(
        kinds(&analyse(&day, &[], &settings)),
        ["unlicensed-at-site"]
    );
    let licensed = [license("aa", "fra-1", FRA, 0, 30 * HOUR)];
    assert_eq!(analyse(&day, &licensed, &settings), vec![]);
}

#[test]
fn one_identity_at_two_sites_within_the_window_is_flagged_with_its_travel() {
    let seen = [
        claimed("aa", "fra-1", FRA, "acme", 1_000),
        claimed("aa", "sin-1", SIN, "acme", 1_600),
    ];
    let found = analyse(&seen, &[], &WatchSettings::default());
    let found: Vec<&Finding> = found
        .iter()
        .filter(|f| f.kind() != "unlicensed-at-site")
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        &Finding::TwoPlaces {
            chip_id: "aa".into(),
            first: Seen {
                site_id: "fra-1".into(),
                tenant: "acme".into(),
                at: 1_000
            },
            second: Seen {
                site_id: "sin-1".into(),
                tenant: "acme".into(),
                at: 1_600
            },
        }
    );
    let Finding::ImpossibleTravel {
        min_km, measured, ..
    } = found[1]
    else {
        panic!("{found:?}")
    };
    // 10,260 km between the centres, less 50 km of licensed radius each.
    assert!((10_100.0..10_220.0).contains(min_km), "{min_km}");
    assert!(!measured);
}

#[test]
fn one_identity_for_two_tenants_at_one_site_is_flagged_without_travel() {
    let seen = [
        claimed("aa", "fra-1", FRA, "acme", 0),
        claimed("aa", "fra-1", FRA, "borealis", 300),
    ];
    let found = analyse(&seen, &[], &WatchSettings::default());
    assert_eq!(kinds(&found), ["two-places", "unlicensed-at-site"]);
}

#[test]
fn a_plausible_move_is_not_flagged_but_a_long_silence_before_it_is() {
    // Frankfurt to Dublin, 1,090 km: two hours is 545 km/h, outside the
    // one-hour window and below airliner speed.
    let seen = [
        claimed("aa", "fra-1", FRA, "acme", 0),
        claimed("aa", "dub-1", DUB, "acme", 2 * HOUR),
    ];
    let settings = WatchSettings::default();
    assert_eq!(
        kinds(&analyse(&seen, &[], &settings)),
        ["unlicensed-at-site"; 2]
    );

    let seen = [
        claimed("aa", "fra-1", FRA, "acme", 0),
        claimed("aa", "dub-1", DUB, "acme", 7 * HOUR),
    ];
    let found = analyse(&seen, &[], &settings);
    assert_eq!(found[0].kind(), "reappeared");
    assert_eq!(
        found[0].to_string(),
        "chip aa was silent for 25200 s after fra-1 and reappeared at dub-1"
    );
    // Silence at the same site is only a gap in attestation, not a move.
    let seen = [
        claimed("aa", "fra-1", FRA, "acme", 0),
        claimed("aa", "fra-1", FRA, "acme", 7 * HOUR),
    ];
    assert_eq!(
        kinds(&analyse(&seen, &[], &settings)),
        ["unlicensed-at-site"]
    );
}

#[test]
fn measured_places_decide_travel_with_their_own_radii() {
    // Half an hour from within 10 km of Frankfurt to within 10 km of
    // Dublin: at least 1,070 km, 2,140 km/h.
    let seen = [
        by_landmarks("aa", "fra-1", FRA, 0, 10.0),
        by_landmarks("aa", "dub-1", DUB, HOUR / 2, 10.0),
    ];
    let settings = WatchSettings {
        window_secs: 60,
        ..WatchSettings::default()
    };
    let found = analyse(&seen, &[], &settings);
    let Finding::ImpossibleTravel {
        min_km, measured, ..
    } = &found[0]
    else {
        panic!("{found:?}")
    };
    assert!((1_060.0..1_080.0).contains(min_km), "{min_km}");
    assert!(measured);
    // Two hours is slow enough.
    let later = [
        seen[0].clone(),
        by_landmarks("aa", "dub-1", DUB, 2 * HOUR, 10.0),
    ];
    assert_eq!(
        kinds(&analyse(&later, &[], &settings)),
        ["unlicensed-at-site"; 2]
    );
}

#[test]
fn the_least_distance_between_places_uses_both_bounds() {
    let at = |lat, lon, nearest_km, farthest_km| Place {
        center: point((lat, lon)),
        nearest_km,
        farthest_km,
        measured: true,
    };
    // Same centre: a ring from 500 to 600 km and a disc of 10 km are at
    // least 490 km apart.
    assert!(
        (min_distance_km(&at(50.0, 8.0, 500.0, 600.0), &at(50.0, 8.0, 0.0, 10.0)) - 490.0).abs()
            < 1e-9
    );
    // Overlapping discs: nothing.
    assert_eq!(
        min_distance_km(&at(50.0, 8.0, 0.0, 100.0), &at(50.5, 8.0, 0.0, 100.0)),
        0.0
    );
    // One degree of latitude is 111.2 km; less 10 and 20 km of radius.
    let d = min_distance_km(&at(50.0, 8.0, 0.0, 10.0), &at(51.0, 8.0, 0.0, 20.0));
    assert!((81.0..81.4).contains(&d), "{d}");
    // An unbounded ring says nothing.
    assert_eq!(
        min_distance_km(
            &at(50.0, 8.0, 0.0, f64::INFINITY),
            &at(1.0, 103.0, 0.0, 1.0)
        ),
        0.0
    );
}

fn license(
    chip: &str,
    site: &str,
    at: (f64, f64),
    not_before: i64,
    expires_at: i64,
) -> LicenseView {
    LicenseView {
        chip_id: chip.into(),
        tenant: "acme".into(),
        site_id: site.into(),
        site: Cap {
            center: point(at),
            radius_km: 50.0,
        },
        not_before,
        expires_at,
    }
}

#[test]
fn chips_without_a_license_for_their_site_are_named() {
    let licenses = [
        license("aa", "fra-1", FRA, 0, 10 * HOUR),
        license("bb", "fra-1", FRA, 0, 10 * HOUR),
        license("cc", "sin-1", SIN, 0, 10 * HOUR),
        // Expired before dd was seen.
        license("dd", "fra-1", FRA, 0, HOUR),
    ];
    let seen = [
        claimed("aa", "fra-1", FRA, "acme", 2 * HOUR),
        claimed("bb", "fra-1", FRA, "acme", 2 * HOUR),
        claimed("cc", "fra-1", FRA, "acme", 2 * HOUR),
        claimed("dd", "fra-1", FRA, "acme", 2 * HOUR),
    ];
    let found = analyse(&seen, &licenses, &WatchSettings::default());
    assert_eq!(
        found,
        vec![Finding::Unlicensed {
            site_id: "fra-1".into(),
            licensed: 2,
            chips: vec!["cc".into(), "dd".into()],
        }]
    );
    assert_eq!(
        found[0].to_string(),
        "site fra-1: 4 chips attested, 2 licensed there; without a license: cc dd"
    );
}

fn signed(
    claims: &[(&str, Status)],
    location: Option<LocationBound>,
) -> (VerifiedResult, Ed25519Key) {
    let key = Ed25519Key::generate().unwrap();
    let claims: Vec<ClaimResult> = claims
        .iter()
        .map(|(name, status)| ClaimResult {
            claim: (*name).into(),
            status: *status,
            code: "ok".into(),
            reason: String::new(),
        })
        .collect();
    let r = AttestationResult {
        appraised_at: 1_000,
        chip_id: "ab".repeat(32),
        model: "CW-100".into(),
        tenant: "acme".into(),
        site_id: "fra-1".into(),
        token_id: "cd".repeat(16),
        evidence_sha256: "ef".repeat(32),
        measurements: vec![],
        verdict: AttestationResult::verdict_of(&claims),
        claims,
        location,
    };
    let bytes = r.sign(&key.key_id(), |m| key.sign(m));
    let keys = TrustedKeys::new().with(key.key_id(), key.public_key());
    (result::verify(&bytes, &keys).unwrap(), key)
}

#[test]
fn only_evidence_the_chip_made_is_a_sighting() {
    let sites = BTreeMap::from([(
        "fra-1".to_owned(),
        Cap {
            center: point(FRA),
            radius_km: 50.0,
        },
    )]);
    let genuine = [
        (claims::EVIDENCE_CHAIN, Status::Pass),
        (claims::EVIDENCE_SIGNATURE, Status::Pass),
        (claims::EVIDENCE_FRESHNESS, Status::Pass),
        (claims::SITE, Status::Fail),
    ];
    let (v, _) = signed(&genuine, None);
    let s = Sighting::from_result(&v, &sites).unwrap();
    assert_eq!(
        (s.chip_id.len(), s.site_id.as_str(), s.at),
        (64, "fra-1", 1_000)
    );
    let place = s.place.unwrap();
    assert_eq!(
        (place.nearest_km, place.farthest_km, place.measured),
        (0.0, 50.0, false)
    );

    // Without a directory entry for the site, the place is unknown.
    assert!(
        Sighting::from_result(&v, &BTreeMap::new())
            .unwrap()
            .place
            .is_none()
    );

    // A landmark bound wins over the claimed site.
    let bound = LocationBound {
        latitude: FRA.0,
        longitude: FRA.1,
        radius_km: 50.0,
        nearest_km: Some(1.5),
        farthest_km: Some(9.5),
    };
    let (v, _) = signed(&genuine, Some(bound));
    let place = Sighting::from_result(&v, &sites).unwrap().place.unwrap();
    assert_eq!(
        (place.nearest_km, place.farthest_km, place.measured),
        (1.5, 9.5, true)
    );

    for broken in [
        claims::EVIDENCE_CHAIN,
        claims::EVIDENCE_SIGNATURE,
        claims::EVIDENCE_FRESHNESS,
    ] {
        let mut set = genuine;
        for c in &mut set {
            if c.0 == broken {
                c.1 = Status::Fail;
            }
        }
        let (v, _) = signed(&set, None);
        assert!(Sighting::from_result(&v, &sites).is_none(), "{broken}");
        let missing: Vec<(&str, Status)> =
            genuine.iter().copied().filter(|c| c.0 != broken).collect();
        let (v, _) = signed(&missing, None);
        assert!(
            Sighting::from_result(&v, &sites).is_none(),
            "{broken} missing"
        );
    }
}
