//! Location bounded by physics: where a chip can be, given signed round
//! trips to landmarks of known position.
//!
//! No signal travels faster than light, so a landmark that timed a round
//! trip of `t` ms to a chip knows the chip is within `t / 2 × c` of it in a
//! straight line, whatever the network did (queues and processing only make
//! the bound looser). Each measurement is a cap on the sphere; the chip lies
//! in their intersection, the feasible region. The location claim passes only
//! when every feasible point lies inside the license's site disc, fails when
//! none does, and is unknown otherwise.
//!
//! Conservative choices, so a bound is never tighter than physics allows:
//! - the straight-line (chord) radius is turned into the great-circle radius
//!   of the same cap, which is never smaller;
//! - comparisons carry a tolerance of [`TOLERANCE_KM`] in the direction that
//!   widens the region.
//!
//! An appraisal that carries landmark records gets a `location` claim
//! ([`location_claim`]); one that carries none gets no location claim, and
//! the `site` claim compares site ids only. Limitation: nothing yet requires
//! records, so a verifier cannot insist on a location bound.
//!
//! Inputs come from landmark records, which are attacker-influenced until
//! their signatures are checked; every function here refuses non-finite or
//! out-of-range numbers instead of computing with them.

pub mod geometry;
pub mod records;

use chipward_proto::result::LocationBound;

pub use geometry::{
    Cap, Feasible, GeoError, Point, SPEED_OF_LIGHT_KM_PER_MS, TOLERANCE_KM, feasible_region,
};

/// What the measurements establish about a license's site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LocationVerdict {
    /// Every feasible point lies within the site radius.
    Inside {
        /// The smallest possible distance from the site, km.
        nearest_km: f64,
        /// The largest possible distance from the site, km.
        farthest_km: f64,
    },
    /// No feasible point lies within the site radius, or none exists.
    Outside {
        /// The smallest possible distance from the site, km; `None` when
        /// the measurements contradict each other.
        nearest_km: Option<f64>,
    },
    /// Some feasible points lie inside, some outside.
    Undecided {
        /// Smallest possible distance from the site, km.
        nearest_km: f64,
        /// Largest possible distance from the site, km.
        farthest_km: f64,
    },
}

/// Judges caps (from round trips at the speed of light) against a site disc.
pub fn judge(caps: &[Cap], site: &Cap) -> Result<LocationVerdict, GeoError> {
    Ok(match feasible_region(caps, &site.center)? {
        Feasible::Empty => LocationVerdict::Outside { nearest_km: None },
        Feasible::Region {
            nearest_km,
            farthest_km,
        } if farthest_km <= site.radius_km => LocationVerdict::Inside {
            nearest_km,
            farthest_km,
        },
        Feasible::Region { nearest_km, .. } if nearest_km > site.radius_km => {
            LocationVerdict::Outside {
                nearest_km: Some(nearest_km),
            }
        }
        Feasible::Region {
            nearest_km,
            farthest_km,
        } => LocationVerdict::Undecided {
            nearest_km,
            farthest_km,
        },
    })
}

/// Speed a calibration of real fiber suggests, km per ms: about 2/3 of c.
/// It may warn, never decide.
pub const CALIBRATED_KM_PER_MS: f64 = SPEED_OF_LIGHT_KM_PER_MS * 2.0 / 3.0;

/// Most landmark records one appraisal may carry.
pub const MAX_RECORDS: usize = geometry::MAX_CAPS;

/// What the `location` claim needs besides the records.
#[derive(Clone, Copy, Debug)]
pub struct LocationInput<'a> {
    /// The chip proven by the evidence, lowercase hex.
    pub chip_id: &'a str,
    /// Its attestation key, which signs the distance-bounding transcripts.
    pub alias_spki: &'a [u8],
    /// The chip's evidence nonce, which every record must be bound to.
    pub binding: &'a [u8; 32],
    /// The license's site disc.
    pub site: Cap,
    /// Unix milliseconds.
    pub now_ms: i64,
    /// Oldest record accepted, ms.
    pub max_age_ms: i64,
}

/// The `location` claim and the bound behind it.
#[derive(Clone, Debug)]
pub struct LocationOutcome {
    /// Pass, fail or unknown, with code and reason.
    pub claim: chipward_proto::result::ClaimResult,
    /// How far from the site centre the chip can be; `None` when a record
    /// was refused.
    pub bound: Option<LocationBound>,
}

/// The `location` claim: pass when every place the records allow is inside
/// the license's site disc, fail when none is (or a record is refused),
/// unknown otherwise. The reason states the largest possible distance.
pub fn location_claim(
    records: &[Vec<u8>],
    landmarks: &records::Landmarks,
    input: &LocationInput<'_>,
) -> LocationOutcome {
    let mut bound = None;
    let claim = judge_records(records, landmarks, input, &mut bound);
    LocationOutcome { claim, bound }
}

fn judge_records(
    records: &[Vec<u8>],
    landmarks: &records::Landmarks,
    input: &LocationInput<'_>,
    bound: &mut Option<LocationBound>,
) -> chipward_proto::result::ClaimResult {
    use crate::claims::{self, LOCATION, code};

    let mut caps = Vec::with_capacity(records.len());
    for (i, bytes) in records.iter().enumerate() {
        match landmarks.check(
            bytes,
            input.chip_id,
            input.alias_spki,
            input.binding,
            input.now_ms,
            input.max_age_ms,
        ) {
            Ok(cap) => caps.push(cap),
            Err(e) => {
                let reason = format!("landmark record {i} refused: {}", claims::with_sources(&e));
                return claims::fail(LOCATION, code::LOCATION_RECORD, reason);
            }
        }
    }
    let verdict = match judge(&caps, &input.site) {
        Ok(v) => v,
        Err(e) => return claims::fail(LOCATION, code::LOCATION_RECORD, claims::with_sources(&e)),
    };
    let radius = input.site.radius_km;
    let (nearest_km, farthest_km) = match verdict {
        LocationVerdict::Outside { nearest_km } => (nearest_km, None),
        LocationVerdict::Inside {
            nearest_km,
            farthest_km,
        }
        | LocationVerdict::Undecided {
            nearest_km,
            farthest_km,
        } => (Some(nearest_km), Some(farthest_km)),
    };
    *bound = Some(LocationBound {
        latitude: input.site.center.latitude,
        longitude: input.site.center.longitude,
        radius_km: radius,
        nearest_km,
        farthest_km,
    });
    let warning = calibrated_warning(&caps, &input.site);
    match verdict {
        LocationVerdict::Inside { farthest_km, .. } => claims::pass(
            LOCATION,
            format!("within {farthest_km:.1} km of the site, licensed radius {radius} km{warning}"),
        ),
        LocationVerdict::Outside {
            nearest_km: Some(near),
        } => claims::fail(
            LOCATION,
            code::LOCATION_OUTSIDE,
            format!("at least {near:.1} km from the site, licensed radius {radius} km"),
        ),
        LocationVerdict::Outside { nearest_km: None } => claims::fail(
            LOCATION,
            code::LOCATION_OUTSIDE,
            "landmark measurements contradict each other",
        ),
        LocationVerdict::Undecided { farthest_km, .. } => claims::unknown(
            LOCATION,
            code::LOCATION_UNCERTAIN,
            format!(
                "may be up to {farthest_km:.1} km from the site, licensed radius {radius} km{warning}"
            ),
        ),
    }
}

/// Shrinks each cap to what a round trip at fiber speed would allow; if that
/// places the chip outside the site, the reason says so. Never decides.
fn calibrated_warning(caps: &[Cap], site: &Cap) -> String {
    let ratio = CALIBRATED_KM_PER_MS / SPEED_OF_LIGHT_KM_PER_MS;
    let tight: Vec<Cap> = caps
        .iter()
        .map(|c| Cap {
            center: c.center,
            radius_km: c.radius_km * ratio,
        })
        .collect();
    match judge(&tight, site) {
        Ok(LocationVerdict::Outside { .. }) => {
            "; warning: at fiber speed (2/3 c) the measurements place it outside".into()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
