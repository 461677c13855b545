//! Simulated geography for location bounds: sites, landmarks and chips at
//! real coordinates, and a network that delays signals as real ones do —
//! fiber at about 2/3 of c along paths longer than the great circle, queueing
//! at every hop, jitter, and the chip's own processing time. Every delay only
//! adds to the light-speed minimum, so an honest simulation can never give a
//! round trip shorter than physics allows; attacks (a relay at the licensed
//! site forwarding to a chip elsewhere) add their own real path.

use chipward_verifier::location::{
    Cap, GeoError, LocationVerdict, Point, SPEED_OF_LIGHT_KM_PER_MS, judge,
};

/// Signal speed in fiber, km per ms (about 2/3 of c).
pub const FIBER_KM_PER_MS: f64 = SPEED_OF_LIGHT_KM_PER_MS * 2.0 / 3.0;

/// How the simulated network delays one direction of an exchange.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkModel {
    /// Path length over great-circle distance, drawn per direction between
    /// these bounds.
    pub inflation: (f64, f64),
    /// Kilometres per router hop.
    pub km_per_hop: f64,
    /// Mean queueing delay per hop, ms (exponentially distributed).
    pub queue_ms: f64,
    /// Uniform jitter per direction, ms, at most.
    pub jitter_ms: f64,
    /// The chip's time to produce its cheap timed reply, ms, between these
    /// bounds. The signature comes after the timed exchange, so it is not
    /// here.
    pub processing_ms: (f64, f64),
}

impl Default for NetworkModel {
    fn default() -> Self {
        Self {
            inflation: (1.1, 2.0),
            km_per_hop: 400.0,
            queue_ms: 0.05,
            jitter_ms: 0.1,
            processing_ms: (0.005, 0.05),
        }
    }
}

/// A small deterministic random source (PCG-style LCG) so studies repeat.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Exponential with this mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

impl NetworkModel {
    /// One-way delay over `km` of great-circle distance, ms.
    pub fn one_way_ms(&self, km: f64, rng: &mut Rng) -> f64 {
        let path = km * rng.between(self.inflation);
        let hops = 1 + (km / self.km_per_hop) as usize;
        let queues: f64 = (0..hops).map(|_| rng.exponential(self.queue_ms)).sum();
        path / FIBER_KM_PER_MS + queues + rng.between((0.0, self.jitter_ms))
    }

    /// The round trip a landmark times to a chip `km` away.
    pub fn round_trip_ms(&self, km: f64, rng: &mut Rng) -> f64 {
        self.one_way_ms(km, rng) + rng.between(self.processing_ms) + self.one_way_ms(km, rng)
    }

    /// The round trip when a relay `relay_km` from the landmark forwards the
    /// challenge to the real chip, `chip_km` further on, and the answer back.
    pub fn relayed_round_trip_ms(&self, relay_km: f64, chip_km: f64, rng: &mut Rng) -> f64 {
        self.round_trip_ms(relay_km, rng) + self.round_trip_ms(chip_km, rng)
    }
}

/// The point `km` from `from` along `bearing_deg` (clockwise from north).
pub fn destination(from: &Point, bearing_deg: f64, km: f64) -> Point {
    let (lat, lon) = (from.latitude.to_radians(), from.longitude.to_radians());
    let (b, d) = (
        bearing_deg.to_radians(),
        km / chipward_verifier::location::geometry::EARTH_RADIUS_KM,
    );
    let lat2 = (lat.sin() * d.cos() + lat.cos() * d.sin() * b.cos())
        .clamp(-1.0, 1.0)
        .asin();
    let lon2 = lon + (b.sin() * d.sin() * lat.cos()).atan2(d.cos() - lat.sin() * lat2.sin());
    let lon2 = (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    Point {
        latitude: lat2.to_degrees(),
        longitude: lon2,
    }
}

/// `count` landmarks on a ring `spacing_km` from the site, evenly spaced in
/// bearing, turned by `turn_deg`.
pub fn landmark_ring(site: &Point, spacing_km: f64, count: usize, turn_deg: f64) -> Vec<Point> {
    (0..count)
        .map(|i| destination(site, turn_deg + 360.0 * i as f64 / count as f64, spacing_km))
        .collect()
}

/// What the verifier concludes from landmarks' round trips to a chip at
/// `chip`, optionally relayed through `relay`, against the site disc.
pub fn appraise_location(
    landmarks: &[Point],
    chip: &Point,
    relay: Option<&Point>,
    site: &Cap,
    network: &NetworkModel,
    rng: &mut Rng,
) -> Result<LocationVerdict, GeoError> {
    let caps = landmarks
        .iter()
        .map(|l| {
            let rtt = match relay {
                Some(r) => {
                    network.relayed_round_trip_ms(l.distance_km(r), r.distance_km(chip), rng)
                }
                None => network.round_trip_ms(l.distance_km(chip), rng),
            };
            Cap::from_round_trip(*l, rtt, SPEED_OF_LIGHT_KM_PER_MS)
        })
        .collect::<Result<Vec<_>, _>>()?;
    judge(&caps, site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_simulated_round_trip_beats_light() {
        let network = NetworkModel::default();
        let mut rng = Rng::new(1);
        for km in [0.0, 1.0, 50.0, 500.0, 5_000.0, 15_000.0] {
            for _ in 0..1_000 {
                assert!(network.round_trip_ms(km, &mut rng) >= 2.0 * km / SPEED_OF_LIGHT_KM_PER_MS);
            }
        }
    }

    #[test]
    fn destination_is_the_distance_asked_for() {
        let frankfurt = Point {
            latitude: 50.1109,
            longitude: 8.6821,
        };
        for bearing in [0.0, 45.0, 135.0, 270.0] {
            for km in [10.0, 300.0, 4_000.0] {
                let there = destination(&frankfurt, bearing, km);
                assert!(
                    (frankfurt.distance_km(&there) - km).abs() < 1e-6,
                    "{bearing} {km}"
                );
            }
        }
    }

    #[test]
    fn a_relayed_chip_abroad_is_never_certified() {
        let site_center = Point {
            latitude: 50.1109,
            longitude: 8.6821,
        };
        let site = Cap {
            center: site_center,
            radius_km: 100.0,
        };
        let landmarks = landmark_ring(&site_center, 20.0, 4, 0.0);
        let abroad = destination(&site_center, 200.0, 1_000.0);
        let network = NetworkModel::default();
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let v = appraise_location(
                &landmarks,
                &abroad,
                Some(&site_center),
                &site,
                &network,
                &mut rng,
            )
            .unwrap();
            assert!(!matches!(v, LocationVerdict::Inside { .. }), "{v:?}");
        }
    }
}
