//! Geometry checked against values worked out independently (haversine in
//! another language, closed forms for one cap) and against dense sampling of
//! the sphere, which knows nothing of the candidate-point method.

use super::*;

fn p(lat: f64, lon: f64) -> Point {
    Point::new(lat, lon).unwrap()
}

fn region(caps: &[Cap], site: &Point) -> (f64, f64) {
    match feasible_region(caps, site).unwrap() {
        Feasible::Region {
            nearest_km,
            farthest_km,
        } => (nearest_km, farthest_km),
        Feasible::Empty => panic!("region is empty"),
    }
}

#[test]
fn distances_match_haversine_computed_elsewhere() {
    // Python haversine with R = 6371.0088 km: 343.5565 and 6548.8995.
    assert!((p(51.5074, -0.1278).distance_km(&p(48.8566, 2.3522)) - 343.5565).abs() < 0.01);
    assert!((p(50.1109, 8.6821).distance_km(&p(39.0438, -77.4874)) - 6548.8995).abs() < 0.01);
    assert_eq!(p(10.0, 20.0).distance_km(&p(10.0, 20.0)), 0.0);
}

#[test]
fn a_round_trip_gives_the_great_circle_radius_of_the_chord_bound() {
    // 2 ms: chord 299.792 km, arc 2R·asin(chord / 2R) = 299.8201 km.
    let cap = Cap::from_round_trip(p(0.0, 0.0), 2.0, SPEED_OF_LIGHT_KM_PER_MS).unwrap();
    assert!(
        (cap.radius_km - 299.8201).abs() < 0.001,
        "{}",
        cap.radius_km
    );
    assert!(cap.radius_km >= 299.792_458);
    // 40 ms: chord 5995.8 km, arc 6242.5979 km.
    let wide = Cap::from_round_trip(p(0.0, 0.0), 40.0, SPEED_OF_LIGHT_KM_PER_MS).unwrap();
    assert!((wide.radius_km - 6242.5979).abs() < 0.001);
    // Beyond the Earth's diameter the cap is the whole sphere.
    let all = Cap::from_round_trip(p(0.0, 0.0), 1_000.0, SPEED_OF_LIGHT_KM_PER_MS).unwrap();
    assert!((all.radius_km - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
}

#[test]
fn one_cap_has_closed_form_extremes() {
    let site = p(50.1109, 8.6821);
    let around = Cap {
        center: site,
        radius_km: 120.0,
    };
    let (near, far) = region(&[around], &site);
    assert_eq!(near, 0.0);
    assert!((far - 120.0).abs() < 0.01, "{far}");

    // A landmark 343.56 km away (London from Paris) with a 100 km cap.
    let paris = p(48.8566, 2.3522);
    let london = Cap {
        center: p(51.5074, -0.1278),
        radius_km: 100.0,
    };
    let (near, far) = region(&[london], &paris);
    assert!((near - 243.5565).abs() < 0.01, "{near}");
    assert!((far - 443.5565).abs() < 0.01, "{far}");
}

#[test]
fn disjoint_caps_leave_nothing_feasible() {
    let a = Cap {
        center: p(0.0, 0.0),
        radius_km: 100.0,
    };
    let b = Cap {
        center: p(0.0, 10.0),
        radius_km: 100.0,
    };
    assert_eq!(
        feasible_region(&[a, b], &p(0.0, 5.0)).unwrap(),
        Feasible::Empty
    );
}

#[test]
fn a_cap_holding_the_antipode_reaches_half_the_earth() {
    // A cap round the site's antipode: farthest is half the circumference,
    // nearest that less the radius.
    let site = p(10.0, 10.0);
    let half = std::f64::consts::PI * EARTH_RADIUS_KM;
    let around_antipode = Cap {
        center: p(-10.0, -170.0),
        radius_km: 100.0,
    };
    let (near, far) = region(&[around_antipode], &site);
    assert!((far - half).abs() < 0.01, "{far}");
    assert!((near - (half - 100.0)).abs() < 0.01, "{near}");
    // A cap round the site that stops short of the antipode does not reach it.
    let (_, far) = region(
        &[Cap {
            center: site,
            radius_km: 19_000.0,
        }],
        &site,
    );
    assert!((far - 19_000.0).abs() < 0.01, "{far}");
}

/// A deterministic stream of uniform points on the sphere.
struct Sampler(u64);

impl Sampler {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A point in the box [lat0, lat1] x [lon0, lon1], uniform on the sphere.
    fn point_in(&mut self, lat: (f64, f64), lon: (f64, f64)) -> Point {
        let (z0, z1) = (lat.0.to_radians().sin(), lat.1.to_radians().sin());
        let z = z0 + (z1 - z0) * self.next_f64();
        Point {
            latitude: z.asin().to_degrees(),
            longitude: lon.0 + (lon.1 - lon.0) * self.next_f64(),
        }
    }
}

#[test]
fn three_landmarks_bound_what_dense_sampling_finds() {
    // Landmarks round Frankfurt, with caps that overlap in a lens.
    let caps = [
        Cap {
            center: p(52.52, 13.40),
            radius_km: 480.0,
        }, // Berlin
        Cap {
            center: p(48.14, 11.58),
            radius_km: 330.0,
        }, // Munich
        Cap {
            center: p(50.94, 6.96),
            radius_km: 210.0,
        }, // Cologne
    ];
    let site = p(50.1109, 8.6821);
    let (near, far) = region(&caps, &site);

    let mut sampler = Sampler(7);
    let (mut seen_near, mut seen_far, mut inside) = (f64::INFINITY, 0.0f64, 0);
    for _ in 0..400_000 {
        let q = sampler.point_in((44.0, 56.0), (0.0, 20.0));
        if caps.iter().all(|c| c.center.distance_km(&q) <= c.radius_km) {
            inside += 1;
            let d = site.distance_km(&q);
            seen_near = seen_near.min(d);
            seen_far = seen_far.max(d);
        }
    }
    assert!(
        inside > 1_000,
        "sampling found only {inside} feasible points"
    );
    // No sampled point lies outside the computed extremes...
    assert!(
        seen_near >= near - 0.01 && seen_far <= far + 0.01,
        "computed {near}..{far}, seen {seen_near}..{seen_far}"
    );
    // ...and the extremes are tight: sampling gets within a few km of them.
    assert!(
        seen_far > far - 5.0 && seen_near < near + 5.0,
        "computed {near}..{far}, seen {seen_near}..{seen_far}"
    );
}

#[test]
fn refuses_bad_numbers() {
    assert!(matches!(
        Point::new(91.0, 0.0),
        Err(GeoError::Coordinate { .. })
    ));
    assert!(matches!(
        Point::new(0.0, f64::NAN),
        Err(GeoError::Coordinate { .. })
    ));
    assert!(matches!(
        Point::new(0.0, -180.5),
        Err(GeoError::Coordinate { .. })
    ));
    assert!(matches!(
        Cap::from_round_trip(p(0.0, 0.0), -1.0, 299.0),
        Err(GeoError::Negative { .. })
    ));
    assert!(matches!(
        Cap::from_round_trip(p(0.0, 0.0), f64::INFINITY, 299.0),
        Err(GeoError::Negative { .. })
    ));
    let bad_radius = Cap {
        center: p(0.0, 0.0),
        radius_km: f64::NAN,
    };
    assert!(matches!(
        feasible_region(&[bad_radius], &p(0.0, 0.0)),
        Err(GeoError::Negative { .. })
    ));
    let bad_center = Cap {
        center: Point {
            latitude: 100.0,
            longitude: 0.0,
        },
        radius_km: 1.0,
    };
    assert!(matches!(
        feasible_region(&[bad_center], &p(0.0, 0.0)),
        Err(GeoError::Coordinate { .. })
    ));
    assert_eq!(feasible_region(&[], &p(0.0, 0.0)), Err(GeoError::Empty));
    let many = vec![
        Cap {
            center: p(0.0, 0.0),
            radius_km: 1.0
        };
        MAX_CAPS + 1
    ];
    assert_eq!(
        feasible_region(&many, &p(0.0, 0.0)),
        Err(GeoError::TooMany(MAX_CAPS + 1))
    );
}

#[test]
fn judges_inside_outside_and_undecided_against_the_site() {
    use crate::location::{LocationVerdict, judge};
    let site = Cap {
        center: p(50.1109, 8.6821),
        radius_km: 50.0,
    };
    let near_site = Cap {
        center: p(50.2, 8.7),
        radius_km: 20.0,
    };
    assert!(
        matches!(judge(&[near_site], &site).unwrap(), LocationVerdict::Inside { farthest_km, .. } if farthest_km < 50.0)
    );

    // Paris is 479 km from Frankfurt; a 100 km cap round it cannot reach the site.
    let paris = Cap {
        center: p(48.8566, 2.3522),
        radius_km: 100.0,
    };
    assert!(
        matches!(judge(&[paris], &site).unwrap(), LocationVerdict::Outside { nearest_km: Some(d) } if d > 300.0)
    );

    let wide = Cap {
        center: site.center,
        radius_km: 400.0,
    };
    assert!(matches!(
        judge(&[wide], &site).unwrap(),
        LocationVerdict::Undecided { .. }
    ));

    let far_apart = [
        Cap {
            center: p(0.0, 0.0),
            radius_km: 10.0,
        },
        Cap {
            center: p(0.0, 1.0),
            radius_km: 10.0,
        },
    ];
    assert_eq!(
        judge(&far_apart, &site).unwrap(),
        LocationVerdict::Outside { nearest_km: None }
    );
}
