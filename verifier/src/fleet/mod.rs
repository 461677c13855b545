//! Fleet integrity: patterns across many appraisals that no single appraisal
//! can show. A chip whose key leaked, or that was diverted, may pass every
//! check each time it attests; the fleet as a whole still gives it away.
//!
//! The analysis reads verified attestation results and the licenses the
//! issuer holds, and flags:
//! - [`Finding::TwoPlaces`]: one chip identity at two sites, or for two
//!   tenants, within a window (a clone, or a leaked key);
//! - [`Finding::ImpossibleTravel`]: consecutive sightings farther apart
//!   than any shipment could cover in the time between them;
//! - [`Finding::Reappeared`]: a chip silent for longer than the attestation
//!   schedule allows that comes back at another site;
//! - [`Finding::Unlicensed`]: more chips attesting at a site than hold a
//!   license for it, naming the chips without one.
//!
//! Only results whose evidence the chip itself made count as sightings:
//! certificate chain, signature and freshness passed. A forged or replayed
//! report says nothing about where the chip was. A sighting's place is the
//! landmark bound when the result carries one (an annulus around the site,
//! backed by physics) and otherwise the claimed site's licensed disc (backed
//! only by the chip's signed claim); findings say which.
//!
//! Limitation: the analysis runs over the results it is given, after the
//! fact; the verifier does not refuse an appraisal because of a finding, and
//! revoked licenses still count as licenses for the site check.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chipward_proto::result::{AttestationResult, Status, VerifiedResult};

use crate::claims;
use crate::location::{Cap, Point};

/// Thresholds of the analysis.
#[derive(Clone, Copy, Debug)]
pub struct WatchSettings {
    /// Two sightings at different sites or tenants closer in time than
    /// this are one identity in two places, seconds. Default 3600.
    pub window_secs: i64,
    /// Fastest a chip can travel between sightings, km/h: an airliner's
    /// cruise. Default 1000.
    pub max_speed_kmh: f64,
    /// Silence longer than this between sightings is a chip that stopped
    /// attesting, seconds: a few missed attestation intervals. Default
    /// 21600 (6 hours).
    pub silence_secs: i64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            window_secs: 3_600,
            max_speed_kmh: 1_000.0,
            silence_secs: 21_600,
        }
    }
}

/// A license as the analysis needs it.
#[derive(Clone, Debug)]
pub struct LicenseView {
    /// Chip id, lowercase hex.
    pub chip_id: String,
    /// Licensed tenant.
    pub tenant: String,
    /// Licensed site id.
    pub site_id: String,
    /// The site's disc.
    pub site: Cap,
    /// Unix seconds from which it holds.
    pub not_before: i64,
    /// Unix seconds at which it stops holding.
    pub expires_at: i64,
}

/// Where a sighting places the chip: between `nearest_km` and `farthest_km`
/// of `center`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Place {
    /// The site centre the distances are measured from.
    pub center: Point,
    /// Smallest possible distance from the centre, km.
    pub nearest_km: f64,
    /// Largest possible distance from the centre, km; infinite when nothing
    /// bounds it.
    pub farthest_km: f64,
    /// Whether landmark round trips established it, rather than the chip's
    /// claim of its site.
    pub measured: bool,
}

/// One appraisal of a chip whose own key made the evidence.
#[derive(Clone, Debug)]
pub struct Sighting {
    /// Chip id, lowercase hex.
    pub chip_id: String,
    /// Tenant the chip claimed.
    pub tenant: String,
    /// Site the chip claimed.
    pub site_id: String,
    /// Unix seconds of the appraisal.
    pub at: i64,
    /// Where it was, if anything says.
    pub place: Option<Place>,
}

impl Sighting {
    /// The sighting a verified result records, or `None` when the chip's
    /// evidence did not hold (chain, signature or freshness not passed), so
    /// the result says nothing about where the chip was. `sites` gives the
    /// discs of claimed sites for results without a landmark bound.
    pub fn from_result(verified: &VerifiedResult, sites: &BTreeMap<String, Cap>) -> Option<Self> {
        let r = verified.result();
        let held = |name: &str| r.claim(name).is_some_and(|c| c.status == Status::Pass);
        let genuine = [
            claims::EVIDENCE_CHAIN,
            claims::EVIDENCE_SIGNATURE,
            claims::EVIDENCE_FRESHNESS,
        ]
        .iter()
        .all(|c| held(c));
        (genuine && !r.chip_id.is_empty()).then(|| Self {
            chip_id: r.chip_id.clone(),
            tenant: r.tenant.clone(),
            site_id: r.site_id.clone(),
            at: r.appraised_at,
            place: place_of(r, sites),
        })
    }
}

fn place_of(r: &AttestationResult, sites: &BTreeMap<String, Cap>) -> Option<Place> {
    if let Some(b) = &r.location
        && let Ok(center) = Point::new(b.latitude, b.longitude)
        && let Some(nearest_km) = b.nearest_km
    {
        return Some(Place {
            center,
            nearest_km,
            farthest_km: b.farthest_km.unwrap_or(f64::INFINITY),
            measured: true,
        });
    }
    sites.get(&r.site_id).map(|site| Place {
        center: site.center,
        nearest_km: 0.0,
        farthest_km: site.radius_km,
        measured: false,
    })
}

/// The smallest distance between any point of `a` and any point of `b`, km.
/// Triangle inequality on the sphere: a point within `[n, f]` of its centre
/// is at least `d - f1 - f2` from the other annulus, and at least
/// `n1 - d - f2` (or `n2 - d - f1`) when one annulus surrounds the other.
pub fn min_distance_km(a: &Place, b: &Place) -> f64 {
    let d = a.center.distance_km(&b.center);
    [
        0.0,
        d - a.farthest_km - b.farthest_km,
        a.nearest_km - d - b.farthest_km,
        b.nearest_km - d - a.farthest_km,
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

/// A sighting named in a finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// Site claimed.
    pub site_id: String,
    /// Tenant claimed.
    pub tenant: String,
    /// Unix seconds.
    pub at: i64,
}

impl From<&Sighting> for Seen {
    fn from(s: &Sighting) -> Self {
        Self {
            site_id: s.site_id.clone(),
            tenant: s.tenant.clone(),
            at: s.at,
        }
    }
}

/// One pattern the fleet shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// One chip identity at two sites or for two tenants within the window.
    TwoPlaces {
        /// The chip.
        chip_id: String,
        /// The earlier sighting.
        first: Seen,
        /// The later one, at another site or for another tenant.
        second: Seen,
    },
    /// Consecutive sightings that need travel faster than any shipment.
    ImpossibleTravel {
        /// The chip.
        chip_id: String,
        /// Where it was.
        from: Seen,
        /// Where it was next.
        to: Seen,
        /// The least distance between the two places, km.
        min_km: f64,
        /// Whether both places were measured by landmarks.
        measured: bool,
    },
    /// A chip silent past the schedule that came back at another site.
    Reappeared {
        /// The chip.
        chip_id: String,
        /// Its last sighting before the silence.
        before: Seen,
        /// Its first sighting after.
        after: Seen,
    },
    /// A site where chips attested without a license for it.
    Unlicensed {
        /// The site.
        site_id: String,
        /// Chips with a license for the site among those seen there.
        licensed: usize,
        /// Chips seen there with none, lowercase hex.
        chips: Vec<String>,
    },
}

impl Finding {
    /// Short stable name of the pattern.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TwoPlaces { .. } => "two-places",
            Self::ImpossibleTravel { .. } => "impossible-travel",
            Self::Reappeared { .. } => "reappeared",
            Self::Unlicensed { .. } => "unlicensed-at-site",
        }
    }

    /// The chips involved.
    pub fn chips(&self) -> Vec<&str> {
        match self {
            Self::TwoPlaces { chip_id, .. }
            | Self::ImpossibleTravel { chip_id, .. }
            | Self::Reappeared { chip_id, .. } => vec![chip_id.as_str()],
            Self::Unlicensed { chips, .. } => chips.iter().map(String::as_str).collect(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |c: &str| c.get(..12).unwrap_or(c).to_owned();
        match self {
            Self::TwoPlaces {
                chip_id,
                first,
                second,
            } => write!(
                f,
                "chip {} attested at {} for {} and, {} s later, at {} for {}",
                short(chip_id),
                first.site_id,
                first.tenant,
                second.at - first.at,
                second.site_id,
                second.tenant
            ),
            Self::ImpossibleTravel {
                chip_id,
                from,
                to,
                min_km,
                measured,
            } => write!(
                f,
                "chip {} moved at least {min_km:.0} km from {} to {} in {} s ({})",
                short(chip_id),
                from.site_id,
                to.site_id,
                to.at - from.at,
                if *measured {
                    "measured by landmarks"
                } else {
                    "by its claimed sites"
                }
            ),
            Self::Reappeared {
                chip_id,
                before,
                after,
            } => write!(
                f,
                "chip {} was silent for {} s after {} and reappeared at {}",
                short(chip_id),
                after.at - before.at,
                before.site_id,
                after.site_id
            ),
            Self::Unlicensed {
                site_id,
                licensed,
                chips,
            } => {
                let list: Vec<String> = chips.iter().map(|c| short(c)).collect();
                write!(
                    f,
                    "site {site_id}: {} chips attested, {licensed} licensed there; without a license: {}",
                    licensed + chips.len(),
                    list.join(" ")
                )
            }
        }
    }
}

/// Every finding in `sightings`, given the licenses in force over them:
/// per chip in time order, then per site, chips sorted by id.
pub fn analyse(
    sightings: &[Sighting],
    licenses: &[LicenseView],
    settings: &WatchSettings,
) -> Vec<Finding> {
    let mut by_chip: BTreeMap<&str, Vec<&Sighting>> = BTreeMap::new();
    for s in sightings {
        by_chip.entry(s.chip_id.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (chip, seen) in &mut by_chip {
        seen.sort_by_key(|s| s.at);
        chip_findings(chip, seen, settings, &mut out);
    }
    out.extend(unlicensed(sightings, licenses));
    out
}

/// The discs of every site the licenses name, for [`Sighting::from_result`].
pub fn site_directory(licenses: &[LicenseView]) -> BTreeMap<String, Cap> {
    licenses
        .iter()
        .map(|l| (l.site_id.clone(), l.site))
        .collect()
}

/// Two places (the first pair only), impossible travel and reappearance
/// over one chip's sightings in time order. Any two sightings within the
/// window that differ imply two consecutive ones that do, so consecutive
/// pairs are enough.
fn chip_findings(chip: &str, seen: &[&Sighting], settings: &WatchSettings, out: &mut Vec<Finding>) {
    let mut two_places = false;
    for pair in seen.windows(2) {
        let [a, b] = [pair[0], pair[1]];
        let gap = b.at - a.at;
        let moved = a.site_id != b.site_id;
        if !two_places && gap <= settings.window_secs && (moved || a.tenant != b.tenant) {
            two_places = true;
            out.push(Finding::TwoPlaces {
                chip_id: chip.to_owned(),
                first: a.into(),
                second: b.into(),
            });
        }
        if let (Some(pa), Some(pb)) = (&a.place, &b.place) {
            let min_km = min_distance_km(pa, pb);
            let hours = gap as f64 / 3_600.0;
            if min_km > 0.0 && min_km > settings.max_speed_kmh * hours {
                out.push(Finding::ImpossibleTravel {
                    chip_id: chip.to_owned(),
                    from: a.into(),
                    to: b.into(),
                    min_km,
                    measured: pa.measured && pb.measured,
                });
            }
        }
        if gap > settings.silence_secs && moved {
            out.push(Finding::Reappeared {
                chip_id: chip.to_owned(),
                before: a.into(),
                after: b.into(),
            });
        }
    }
}

/// Per site, the chips seen there with no license for that site in force
/// at the time of the sighting.
fn unlicensed(sightings: &[Sighting], licenses: &[LicenseView]) -> Vec<Finding> {
    let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut without: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in sightings {
        seen.entry(&s.site_id).or_default().insert(&s.chip_id);
        let licensed = licenses.iter().any(|l| {
            l.chip_id == s.chip_id
                && l.site_id == s.site_id
                && (l.not_before..l.expires_at).contains(&s.at)
        });
        if !licensed {
            without.entry(&s.site_id).or_default().insert(&s.chip_id);
        }
    }
    without
        .into_iter()
        .map(|(site, chips)| {
            let all = seen.get(site).map_or(0, BTreeSet::len);
            Finding::Unlicensed {
                site_id: site.to_owned(),
                licensed: all - chips.len(),
                chips: chips.into_iter().map(str::to_owned).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
