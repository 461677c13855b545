//! The compliance policy: each chip model's export classification, and the
//! tiers of destination (site) and partner (tenant) that bound a license.
//!
//! A tier sets three things:
//! - `max_lifetime_secs`: how long a license may be kept alive by renewals,
//!   counted from the first license of its lineage; past it a renewal is
//!   refused and the license must be issued anew, which screens again;
//! - `attestation_interval_secs`: the longest any one token of the tier
//!   runs, so a chip that does not attest and renew within each interval
//!   stops (chips enforce their own tokens);
//! - `location`: `claimed` (the chip's signed claim of its site is enough)
//!   or `measured` (a renewal needs a passing `location` claim, decided by
//!   landmark round trips).
//!
//! A license falls under the stricter of its site's tier and its tenant's
//! tier; tiers are listed from least to most strict, so stricter means
//! later in the file. The file comes from the operator and is trusted, but
//! it is checked at start-up: unknown keys, unknown tier names, duplicate
//! entries and zero spans are refused.
//!
//! Without a policy file the issuer applies none of this (any model, site
//! and tenant; lifetimes from the issuer's own settings).

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

/// The example policy shipped with the issuer; the demo runs on it.
pub const EXAMPLE_POLICY: &str = include_str!("../compliance.example.toml");

/// How a tier wants a chip's location shown.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LocationAssurance {
    /// The chip's signed claim of its site.
    Claimed,
    /// Landmark round trips that place it inside the site.
    Measured,
}

/// One tier, as written and as used.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Tier name, referred to by sites and partners.
    pub name: String,
    /// Longest a lineage of renewals may run, seconds.
    pub max_lifetime_secs: i64,
    /// Longest one token may run, seconds.
    pub attestation_interval_secs: i64,
    /// What shows the chip's location.
    pub location: LocationAssurance,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    name: String,
    classification: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteEntry {
    id: String,
    country: String,
    tier: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerEntry {
    tenant: String,
    tier: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    model: Vec<ModelEntry>,
    tier: Vec<Tier>,
    #[serde(default)]
    site: Vec<SiteEntry>,
    #[serde(default)]
    partner: Vec<PartnerEntry>,
    /// Tier of tenants not listed as partners.
    default_partner_tier: String,
}

/// A site the policy knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// ISO 3166 alpha-2 country code.
    pub country: String,
    /// Index into the tiers.
    tier: usize,
}

/// The checked policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompliancePolicy {
    models: BTreeMap<String, String>,
    tiers: Vec<Tier>,
    sites: BTreeMap<String, Destination>,
    partners: BTreeMap<String, usize>,
    default_partner_tier: usize,
}

/// What the policy allows one license.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms<'a> {
    /// The model's export classification.
    pub classification: &'a str,
    /// The tier that applies.
    pub tier: &'a Tier,
    /// The destination's country.
    pub country: &'a str,
}

/// A policy file that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not TOML of the expected shape.
    #[error("compliance policy is not valid")]
    Toml(#[from] toml::de::Error),
    /// Something is defined twice.
    #[error("{what} {name:?} is defined twice")]
    Duplicate {
        /// Model, tier, site or partner.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A reference to a tier that is not defined.
    #[error("{what} {name:?} names unknown tier {tier:?}")]
    UnknownTier {
        /// Site, partner or default.
        what: &'static str,
        /// The entry.
        name: String,
        /// The tier it names.
        tier: String,
    },
    /// A value out of range.
    #[error("{what} of {name:?} is out of range: {reason}")]
    Range {
        /// Which value.
        what: &'static str,
        /// The entry.
        name: String,
        /// Why.
        reason: &'static str,
    },
}

/// Why the policy refuses a license.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComplianceError {
    /// The chip's model has no classification in the policy.
    #[error("chip model {model:?} has no export classification in the policy")]
    UnclassifiedModel {
        /// The model.
        model: String,
    },
    /// The request names another classification than the model's.
    #[error("chip model {model:?} is classified {expected}, the request says {requested}")]
    Classification {
        /// The model.
        model: String,
        /// Its classification.
        expected: String,
        /// What the request said.
        requested: String,
    },
    /// The site is not a destination of the policy.
    #[error("site {site:?} is not a destination in the policy")]
    UnknownSite {
        /// The site id.
        site: String,
    },
    /// The lifetime asked for exceeds the tier's attestation interval.
    #[error(
        "tier {tier} allows tokens of at most {max} s (its attestation interval), {requested} s asked"
    )]
    Lifetime {
        /// The tier.
        tier: String,
        /// Its interval.
        max: i64,
        /// What was asked.
        requested: i64,
    },
    /// The lineage has run for the tier's whole term.
    #[error("license term of tier {tier} ({max} s) has ended; issue a new license")]
    TermEnded {
        /// The tier.
        tier: String,
        /// The term.
        max: i64,
    },
    /// The tier needs a measured location and the result has none passing.
    #[error(
        "tier {tier} needs a location measured by landmarks, and the result has no passing location claim"
    )]
    LocationNotMeasured {
        /// The tier.
        tier: String,
    },
}

/// Longest span a tier may set: ten years, seconds.
const MAX_SPAN_SECS: i64 = 10 * 365 * 86_400;

impl CompliancePolicy {
    /// Reads and checks a policy file.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text)?;

        let mut tiers: BTreeMap<String, usize> = BTreeMap::new();
        for (i, t) in file.tier.iter().enumerate() {
            for (what, v) in [
                ("max_lifetime_secs", t.max_lifetime_secs),
                ("attestation_interval_secs", t.attestation_interval_secs),
            ] {
                if !(1..=MAX_SPAN_SECS).contains(&v) {
                    return Err(range(what, &t.name, "must be 1 s to 10 years"));
                }
            }
            if t.attestation_interval_secs > t.max_lifetime_secs {
                return Err(range(
                    "attestation_interval_secs",
                    &t.name,
                    "must not exceed max_lifetime_secs",
                ));
            }
            unique(&mut tiers, "tier", &t.name, i)?;
        }
        let tier_of = |what: &'static str, name: &str, tier: &str| {
            tiers
                .get(tier)
                .copied()
                .ok_or_else(|| PolicyError::UnknownTier {
                    what,
                    name: name.to_owned(),
                    tier: tier.to_owned(),
                })
        };

        let mut models = BTreeMap::new();
        for m in &file.model {
            unique(&mut models, "model", &m.name, m.classification.clone())?;
        }
        let mut sites = BTreeMap::new();
        for s in &file.site {
            let valid = s.country.len() == 2 && s.country.bytes().all(|b| b.is_ascii_uppercase());
            if !valid {
                return Err(range("country", &s.id, "must be an ISO 3166 alpha-2 code"));
            }
            let destination = Destination {
                country: s.country.clone(),
                tier: tier_of("site", &s.id, &s.tier)?,
            };
            unique(&mut sites, "site", &s.id, destination)?;
        }
        let mut partners = BTreeMap::new();
        for p in &file.partner {
            unique(
                &mut partners,
                "partner",
                &p.tenant,
                tier_of("partner", &p.tenant, &p.tier)?,
            )?;
        }
        let default_partner_tier = tier_of(
            "default",
            "default_partner_tier",
            &file.default_partner_tier,
        )?;
        Ok(Self {
            models,
            tiers: file.tier,
            sites,
            partners,
            default_partner_tier,
        })
    }

    /// The terms for a license of a chip of `model` at `site_id` for
    /// `tenant`, or why there are none.
    pub fn terms(
        &self,
        model: &str,
        site_id: &str,
        tenant: &str,
    ) -> Result<Terms<'_>, ComplianceError> {
        let classification =
            self.models
                .get(model)
                .ok_or_else(|| ComplianceError::UnclassifiedModel {
                    model: model.to_owned(),
                })?;
        let site = self
            .sites
            .get(site_id)
            .ok_or_else(|| ComplianceError::UnknownSite {
                site: site_id.to_owned(),
            })?;
        let partner = self
            .partners
            .get(tenant)
            .copied()
            .unwrap_or(self.default_partner_tier);
        let tier = &self.tiers[site.tier.max(partner)];
        Ok(Terms {
            classification,
            tier,
            country: &site.country,
        })
    }
}

impl Terms<'_> {
    /// The classification a license gets: the model's, when the request
    /// gives none or the same one.
    pub fn classification_for(
        &self,
        model: &str,
        requested: &str,
    ) -> Result<String, ComplianceError> {
        if requested.is_empty() || requested == self.classification {
            Ok(self.classification.to_owned())
        } else {
            Err(ComplianceError::Classification {
                model: model.to_owned(),
                expected: self.classification.to_owned(),
                requested: requested.to_owned(),
            })
        }
    }

    /// The token lifetime, seconds: `requested`, or the tier's interval when
    /// 0 is asked, never more than the interval.
    pub fn lifetime(&self, requested: i64) -> Result<i64, ComplianceError> {
        let max = self.tier.attestation_interval_secs;
        match requested {
            0 => Ok(max),
            r if r <= max => Ok(r),
            r => Err(ComplianceError::Lifetime {
                tier: self.tier.name.clone(),
                max,
                requested: r,
            }),
        }
    }

    /// When a lineage that began at `started_at` must end: a renewal's
    /// token never runs past it, and none is granted at or after it.
    pub fn term_end(&self, started_at: i64) -> i64 {
        started_at.saturating_add(self.tier.max_lifetime_secs)
    }

    /// Checks a renewal at `now` of a lineage that began at `started_at`,
    /// whose result's `location` claim passed or not; returns the renewed
    /// token's expiry for a requested lifetime.
    pub fn renewal_expiry(
        &self,
        started_at: i64,
        now: i64,
        requested: i64,
        location_passed: bool,
    ) -> Result<i64, ComplianceError> {
        let end = self.term_end(started_at);
        if now >= end {
            return Err(ComplianceError::TermEnded {
                tier: self.tier.name.clone(),
                max: self.tier.max_lifetime_secs,
            });
        }
        if self.tier.location == LocationAssurance::Measured && !location_passed {
            return Err(ComplianceError::LocationNotMeasured {
                tier: self.tier.name.clone(),
            });
        }
        Ok(now.saturating_add(self.lifetime(requested)?).min(end))
    }
}

fn range(what: &'static str, name: &str, reason: &'static str) -> PolicyError {
    PolicyError::Range {
        what,
        name: name.to_owned(),
        reason,
    }
}

fn unique<V>(
    map: &mut BTreeMap<String, V>,
    what: &'static str,
    name: &str,
    value: V,
) -> Result<(), PolicyError> {
    if map.insert(name.to_owned(), value).is_some() {
        return Err(PolicyError::Duplicate {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
