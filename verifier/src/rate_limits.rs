//! The verifier's rate limits: a budget per client on `Challenge` and
//! `Appraise`, and per chip on `Appraise`.
//!
//! | limit | key | spent by |
//! | --- | --- | --- |
//! | `challenge_per_client` | client | every `Challenge` |
//! | `appraise_per_client` | client | every `Appraise`, garbage included |
//! | `appraise_per_chip` | chip id | `Appraise` with authentic evidence for a fresh challenge |
//!
//! The chip's budget is spent in the same step that uses up the
//! challenge ([`crate::appraisal::Appraiser::appraise_limited`]): forged
//! or malformed evidence, evidence for an expired or forged challenge and
//! replays of genuine evidence spend nothing, so nobody can use up another
//! chip's budget without that chip's key. A refused appraisal leaves its
//! challenge unused, so the chip may send the same evidence again once the
//! wait is over (while the challenge lives). The client key comes from
//! [`chipward_proto::access::Caller::key`] (the SHA-256 of the client certificate).

use std::sync::Arc;
use std::time::Duration;

use chipward_proto::rate_limit::{
    KeyedLimiter, MAX_CAPACITY, MonotonicClock, Rate, RateConfig, RateError, SystemMonotonic,
};
use serde::Deserialize;
use thiserror::Error;

use crate::service::ServiceError;

/// One of the verifier's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `Challenge`, per client.
    ChallengePerClient,
    /// `Appraise`, per client.
    AppraisePerClient,
    /// `Appraise`, per chip.
    AppraisePerChip,
}

impl Limit {
    /// Every limit, in the order of the configuration file.
    pub const ALL: [Self; 3] = [
        Self::ChallengePerClient,
        Self::AppraisePerClient,
        Self::AppraisePerChip,
    ];

    /// The configuration key, which refusals name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChallengePerClient => "challenge_per_client",
            Self::AppraisePerClient => "appraise_per_client",
            Self::AppraisePerChip => "appraise_per_chip",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ChallengePerClient => 0,
            Self::AppraisePerClient => 1,
            Self::AppraisePerChip => 2,
        }
    }
}

/// The `[rate_limits]` table of the configuration file; every key is
/// optional. Each rate is `{ burst = N, interval_ms = M }`: N requests at
/// once, then one every M milliseconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Most keys each limit remembers (1 to 10,000,000). Default 65536.
    pub max_tracked_keys: u64,
    /// Default burst 10000, interval 1 ms (1,000 per second).
    pub challenge_per_client: RateConfig,
    /// Default burst 10000, interval 1 ms (1,000 per second).
    pub appraise_per_client: RateConfig,
    /// Default burst 20, interval 6000 ms (10 per minute).
    pub appraise_per_chip: RateConfig,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        let d = RateLimitSettings::default();
        let config = |limit| {
            let rate = d.rate(limit);
            RateConfig {
                burst: rate.burst(),
                interval_ms: u64::try_from(rate.interval().as_millis()).unwrap_or(u64::MAX),
            }
        };
        Self {
            max_tracked_keys: d.max_tracked_keys as u64,
            challenge_per_client: config(Limit::ChallengePerClient),
            appraise_per_client: config(Limit::AppraisePerClient),
            appraise_per_chip: config(Limit::AppraisePerChip),
        }
    }
}

/// A `[rate_limits]` value out of range.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("rate_limits.{key}: {source}")]
pub struct RateLimitConfigError {
    /// The key.
    pub key: &'static str,
    /// What is allowed.
    #[source]
    pub source: RateError,
}

impl RateLimitsConfig {
    /// The checked settings.
    pub fn settings(&self) -> Result<RateLimitSettings, RateLimitConfigError> {
        let rate = |key, c: &RateConfig| {
            c.rate()
                .map_err(|source| RateLimitConfigError { key, source })
        };
        let max_tracked_keys = usize::try_from(self.max_tracked_keys)
            .ok()
            .filter(|n| (1..=MAX_CAPACITY).contains(n))
            .ok_or(RateLimitConfigError {
                key: "max_tracked_keys",
                source: RateError::Capacity,
            })?;
        Ok(RateLimitSettings {
            max_tracked_keys,
            rates: [
                rate("challenge_per_client", &self.challenge_per_client)?,
                rate("appraise_per_client", &self.appraise_per_client)?,
                rate("appraise_per_chip", &self.appraise_per_chip)?,
            ],
        })
    }
}

/// The checked limits: a rate for each [`Limit`] and the key capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Most keys each limit remembers.
    pub max_tracked_keys: usize,
    /// Indexed by [`Limit::index`].
    rates: [Rate; 3],
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let rate = |burst, ms| {
            Rate::new(burst, Duration::from_millis(ms)).expect("the default rates are in range")
        };
        Self {
            max_tracked_keys: 65_536,
            rates: [rate(10_000, 1), rate(10_000, 1), rate(20, 6_000)],
        }
    }
}

impl RateLimitSettings {
    /// The rate of `limit`.
    pub fn rate(&self, limit: Limit) -> Rate {
        self.rates[limit.index()]
    }

    /// Replaces the rate of `limit`.
    #[must_use]
    pub fn with_rate(mut self, limit: Limit, rate: Rate) -> Self {
        self.rates[limit.index()] = rate;
        self
    }
}

/// The verifier's limiters, one per [`Limit`].
#[derive(Debug)]
pub struct VerifierRateLimits {
    limiters: Vec<KeyedLimiter>,
}

impl VerifierRateLimits {
    /// Limiters for `settings` that read time from `clock`.
    pub fn new(settings: &RateLimitSettings, clock: Arc<dyn MonotonicClock>) -> Self {
        let limiters = Limit::ALL
            .iter()
            .map(|&limit| {
                KeyedLimiter::new(
                    limit.name(),
                    settings.rate(limit),
                    settings.max_tracked_keys,
                    Arc::clone(&clock),
                )
                .expect("settings hold a checked capacity")
            })
            .collect();
        Self { limiters }
    }

    /// Limiters for `settings` on the system's monotonic clock.
    pub fn system(settings: &RateLimitSettings) -> Self {
        Self::new(settings, Arc::new(SystemMonotonic::new()))
    }

    /// Spends one request of `key`'s budget under `limit`.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), ServiceError> {
        self.limiter(limit)
            .check(key)
            .map_err(ServiceError::RateLimited)
    }

    /// The limiter of `limit`.
    pub fn limiter(&self, limit: Limit) -> &KeyedLimiter {
        &self.limiters[limit.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let s = RateLimitSettings::default();
        let got: Vec<(&str, u32, Duration)> = Limit::ALL
            .iter()
            .map(|&l| (l.name(), s.rate(l).burst(), s.rate(l).interval()))
            .collect();
        let ms = Duration::from_millis;
        assert_eq!(
            got,
            [
                ("challenge_per_client", 10_000, ms(1)),
                ("appraise_per_client", 10_000, ms(1)),
                ("appraise_per_chip", 20, ms(6_000)),
            ]
        );
        assert_eq!(s.max_tracked_keys, 65_536);
        assert_eq!(RateLimitsConfig::default().settings().unwrap(), s);
    }

    #[test]
    fn refuses_values_out_of_range_naming_the_key() {
        let mut config = RateLimitsConfig::default();
        config.appraise_per_chip.burst = 0;
        let err = config.settings().unwrap_err();
        assert_eq!(
            err.to_string(),
            "rate_limits.appraise_per_chip: burst must be 1 to 1000000"
        );
        let mut config = RateLimitsConfig::default();
        config.challenge_per_client.interval_ms = 86_400_001;
        assert_eq!(
            config.settings().unwrap_err(),
            RateLimitConfigError {
                key: "challenge_per_client",
                source: RateError::Interval
            }
        );
        let config = RateLimitsConfig {
            max_tracked_keys: 10_000_001,
            ..RateLimitsConfig::default()
        };
        assert_eq!(config.settings().unwrap_err().key, "max_tracked_keys");
    }
}
