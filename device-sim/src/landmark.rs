//! Simulated landmarks: a key, an enrolled position, and the timed
//! distance-bounding exchange with a chip, whose round trip the simulated
//! network (see [`crate::geography`]) decides. Each measurement becomes a
//! signed record bound to the appraisal it serves.

use chipward_certs::keys::{Ed25519Key, KeyError};
use chipward_proto::landmark::MeasurementRecord;
use chipward_verifier::location::Point;
use chipward_verifier::location::records::{Landmark, Landmarks};
use ring::rand::{SecureRandom, SystemRandom};

use crate::chip::{ChipError, SimChip};
use crate::geography::{NetworkModel, Rng, destination};

/// A landmark with its record-signing key.
pub struct SimLandmark {
    /// Its id.
    pub id: String,
    /// Where it stands.
    pub position: Point,
    key: Ed25519Key,
}

impl std::fmt::Debug for SimLandmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLandmark")
            .field("id", &self.id)
            .field("position", &self.position)
            .finish()
    }
}

/// Three landmarks `spacing_km` from `center`, for the site `site_id`.
pub fn ring(site_id: &str, center: &Point, spacing_km: f64) -> Result<Vec<SimLandmark>, KeyError> {
    (0..3)
        .map(|i| {
            Ok(SimLandmark {
                id: format!("{site_id}-lm-{i}"),
                position: destination(center, 120.0 * i as f64, spacing_km),
                key: Ed25519Key::generate()?,
            })
        })
        .collect()
}

/// The verifier's view of these landmarks: enrolled ids, positions, keys.
pub fn enrolment<'a>(landmarks: impl IntoIterator<Item = &'a SimLandmark>) -> Landmarks {
    landmarks.into_iter().fold(Landmarks::default(), |set, l| {
        set.with(
            &l.key.key_id(),
            Landmark {
                id: l.id.clone(),
                position: l.position,
                public_key: l.key.public_key(),
            },
        )
    })
}

impl SimLandmark {
    /// Measures `chip`, physically at `chip_at`, for the appraisal whose
    /// evidence nonce is `binding`; `relay` is where a relay forwarding the
    /// challenge stands, if the chip is not where it claims. Returns the
    /// signed record.
    #[expect(
        clippy::too_many_arguments,
        reason = "one simulated exchange has this many inputs"
    )]
    pub fn measure(
        &self,
        chip: &SimChip,
        chip_at: &Point,
        relay: Option<&Point>,
        binding: &[u8; 32],
        network: &NetworkModel,
        rng: &mut Rng,
        now_ms: i64,
    ) -> Result<Vec<u8>, ChipError> {
        let mut challenge = [0u8; 32];
        SystemRandom::new()
            .fill(&mut challenge)
            .map_err(|_| ChipError::Key("random source failed".into()))?;
        let answer = chip.distance_bound(&self.id, binding, &challenge)?;
        let rtt_ms = match relay {
            Some(r) => network.relayed_round_trip_ms(
                self.position.distance_km(r),
                r.distance_km(chip_at),
                rng,
            ),
            None => network.round_trip_ms(self.position.distance_km(chip_at), rng),
        };
        let record = MeasurementRecord {
            landmark_id: self.id.clone(),
            latitude: self.position.latitude,
            longitude: self.position.longitude,
            chip_id: chip.chip_id.to_hex(),
            binding: hex::encode(binding),
            rtt_ns: (rtt_ms * 1_000_000.0).ceil() as u64,
            measured_at_ms: now_ms,
            commitment: hex::encode(answer.commitment),
            challenge: hex::encode(challenge),
            response: hex::encode(answer.response),
            secret: hex::encode(answer.secret),
            chip_signature: hex::encode(answer.signature),
        };
        Ok(record.sign(&self.key.key_id(), |m| self.key.sign(m)))
    }
}

/// The network between a metro site's landmarks and its chips: short,
/// well-provisioned fiber.
pub fn metro_network() -> NetworkModel {
    NetworkModel {
        inflation: (1.1, 1.5),
        km_per_hop: 50.0,
        queue_ms: 0.002,
        jitter_ms: 0.005,
        processing_ms: (0.005, 0.02),
    }
}
