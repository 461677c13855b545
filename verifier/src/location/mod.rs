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
//! Limitation: the geometry and the checking of landmark records are here,
//! but appraisals do not carry records yet, so no result has a location
//! claim; the `site` claim still compares site ids.
//!
//! Inputs come from landmark records, which are attacker-influenced until
//! their signatures are checked; every function here refuses non-finite or
//! out-of-range numbers instead of computing with them.

pub mod geometry;
pub mod records;

pub use geometry::{
    Cap, Feasible, GeoError, Point, SPEED_OF_LIGHT_KM_PER_MS, TOLERANCE_KM, feasible_region,
};

/// What the measurements establish about a license's site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LocationVerdict {
    /// Every feasible point lies within the site radius.
    Inside {
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
        Feasible::Region { farthest_km, .. } if farthest_km <= site.radius_km => {
            LocationVerdict::Inside { farthest_km }
        }
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
