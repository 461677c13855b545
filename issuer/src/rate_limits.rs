//! The issuer's rate limits: a budget per client and per chip (or host) on
//! the calls that validate certificate chains, seal credentials or write
//! to the ledger for callers who are not yet authenticated.
//!
//! | limit | key | spent by |
//! | --- | --- | --- |
//! | `enrol_chip_per_client` | client | every `EnrolChip` |
//! | `enrol_chip_per_chip` | chip id | `EnrolChip` whose chain validated |
//! | `host_enrolment_per_client` | client | every `Begin`- and `CompleteHostEnrolment` |
//! | `host_enrolment_per_host` | host id | an enrolment begun (now pending), one completed |
//! | `renew_per_client` | client | every `RenewLicense` |
//! | `renew_per_chip` | chip id | `RenewLicense` with a trusted result for that license |
//!
//! The client key comes from [`chipward_proto::access::Caller::key`] (the SHA-256 of the client certificate);
//! garbage never reaches a chip's or host's budget, since those are spent
//! only once the chip or host is proven.
//!
//! Limitation: enrolment chains and EK certificates are public, and
//! `EnrolChip` and `BeginHostEnrolment` carry no proof of possession, so
//! whoever holds a chip's certificates can spend its enrolment budget (at
//! the rate of their own client budget). A chip enrols once and enrolling
//! again changes nothing; host enrolment needs the TPM to complete.

use std::sync::Arc;
use std::time::Duration;

use chipward_proto::rate_limit::{
    KeyedLimiter, MonotonicClock, Rate, RateConfig, RateError, RateLimited, SystemMonotonic,
};
use serde::Deserialize;

use crate::config::ConfigError;
use crate::error::ServiceError;

/// One of the issuer's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `EnrolChip`, per client.
    EnrolChipPerClient,
    /// `EnrolChip`, per chip.
    EnrolChipPerChip,
    /// `BeginHostEnrolment` and `CompleteHostEnrolment`, per client.
    HostEnrolmentPerClient,
    /// `BeginHostEnrolment` and `CompleteHostEnrolment`, per host.
    HostEnrolmentPerHost,
    /// `RenewLicense`, per client.
    RenewPerClient,
    /// `RenewLicense`, per chip.
    RenewPerChip,
}

impl Limit {
    /// Every limit, in the order of the configuration file.
    pub const ALL: [Self; 6] = [
        Self::EnrolChipPerClient,
        Self::EnrolChipPerChip,
        Self::HostEnrolmentPerClient,
        Self::HostEnrolmentPerHost,
        Self::RenewPerClient,
        Self::RenewPerChip,
    ];

    /// The configuration key, which refusals name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EnrolChipPerClient => "enrol_chip_per_client",
            Self::EnrolChipPerChip => "enrol_chip_per_chip",
            Self::HostEnrolmentPerClient => "host_enrolment_per_client",
            Self::HostEnrolmentPerHost => "host_enrolment_per_host",
            Self::RenewPerClient => "renew_per_client",
            Self::RenewPerChip => "renew_per_chip",
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
    pub enrol_chip_per_client: RateConfig,
    /// Default burst 10, interval 60000 ms.
    pub enrol_chip_per_chip: RateConfig,
    /// Default burst 1000, interval 10 ms (100 per second).
    pub host_enrolment_per_client: RateConfig,
    /// Default burst 10, interval 60000 ms; one enrolment spends two.
    pub host_enrolment_per_host: RateConfig,
    /// Default burst 10000, interval 1 ms (1,000 per second).
    pub renew_per_client: RateConfig,
    /// Default burst 10, interval 60000 ms.
    pub renew_per_chip: RateConfig,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        let d = RateLimitSettings::default();
        let config = |rate: Rate| RateConfig {
            burst: rate.burst(),
            interval_ms: u64::try_from(rate.interval().as_millis()).unwrap_or(u64::MAX),
        };
        Self {
            max_tracked_keys: d.max_tracked_keys as u64,
            enrol_chip_per_client: config(d.rate(Limit::EnrolChipPerClient)),
            enrol_chip_per_chip: config(d.rate(Limit::EnrolChipPerChip)),
            host_enrolment_per_client: config(d.rate(Limit::HostEnrolmentPerClient)),
            host_enrolment_per_host: config(d.rate(Limit::HostEnrolmentPerHost)),
            renew_per_client: config(d.rate(Limit::RenewPerClient)),
            renew_per_chip: config(d.rate(Limit::RenewPerChip)),
        }
    }
}

impl RateLimitsConfig {
    /// The checked settings.
    pub fn settings(&self) -> Result<RateLimitSettings, ConfigError> {
        let invalid = |key, e: RateError| ConfigError::Invalid {
            key,
            reason: match e {
                RateError::Burst => "burst must be 1 to 1000000",
                RateError::Interval => "interval_ms must be 1 to 86400000",
                _ => "max_tracked_keys must be 1 to 10000000",
            },
        };
        let rate = |key, c: &RateConfig| c.rate().map_err(|e| invalid(key, e));
        let max_tracked_keys = usize::try_from(self.max_tracked_keys)
            .ok()
            .filter(|n| (1..=chipward_proto::rate_limit::MAX_CAPACITY).contains(n))
            .ok_or_else(|| invalid("rate_limits.max_tracked_keys", RateError::Capacity))?;
        Ok(RateLimitSettings {
            max_tracked_keys,
            rates: [
                rate(
                    "rate_limits.enrol_chip_per_client",
                    &self.enrol_chip_per_client,
                )?,
                rate("rate_limits.enrol_chip_per_chip", &self.enrol_chip_per_chip)?,
                rate(
                    "rate_limits.host_enrolment_per_client",
                    &self.host_enrolment_per_client,
                )?,
                rate(
                    "rate_limits.host_enrolment_per_host",
                    &self.host_enrolment_per_host,
                )?,
                rate("rate_limits.renew_per_client", &self.renew_per_client)?,
                rate("rate_limits.renew_per_chip", &self.renew_per_chip)?,
            ],
        })
    }
}

/// The checked limits: a rate for each [`Limit`] and the key capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Most keys each limit remembers.
    pub max_tracked_keys: usize,
    /// Indexed in the order of [`Limit::ALL`].
    rates: [Rate; 6],
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let rate = |burst, ms| {
            Rate::new(burst, Duration::from_millis(ms)).expect("the default rates are in range")
        };
        Self {
            max_tracked_keys: 65_536,
            rates: [
                rate(10_000, 1),
                rate(10, 60_000),
                rate(1_000, 10),
                rate(10, 60_000),
                rate(10_000, 1),
                rate(10, 60_000),
            ],
        }
    }
}

impl RateLimitSettings {
    /// The rate of `limit`.
    pub fn rate(&self, limit: Limit) -> Rate {
        self.rates[index(limit)]
    }

    /// Replaces the rate of `limit`.
    #[must_use]
    pub fn with_rate(mut self, limit: Limit, rate: Rate) -> Self {
        self.rates[index(limit)] = rate;
        self
    }
}

/// The issuer's limiters, one per [`Limit`].
#[derive(Debug)]
pub struct IssuerRateLimits {
    limiters: Vec<KeyedLimiter>,
}

impl IssuerRateLimits {
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
        self.limiter(limit).check(key).map_err(limited)
    }

    /// Runs `op` if `key` has a request left under `limit`, spending it only
    /// if `op` succeeds.
    pub fn check_if<T>(
        &self,
        limit: Limit,
        key: &str,
        op: impl FnOnce() -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        self.limiter(limit).check_if(key, op).map_err(limited)?
    }

    fn limiter(&self, limit: Limit) -> &KeyedLimiter {
        &self.limiters[index(limit)]
    }
}

/// Where `limit` sits in [`Limit::ALL`].
fn index(limit: Limit) -> usize {
    match limit {
        Limit::EnrolChipPerClient => 0,
        Limit::EnrolChipPerChip => 1,
        Limit::HostEnrolmentPerClient => 2,
        Limit::HostEnrolmentPerHost => 3,
        Limit::RenewPerClient => 4,
        Limit::RenewPerChip => 5,
    }
}

fn limited(e: RateLimited) -> ServiceError {
    ServiceError::RateLimited(e)
}

#[cfg(test)]
mod tests {
    use chipward_proto::rate_limit::ManualMonotonic;

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
                ("enrol_chip_per_client", 10_000, ms(1)),
                ("enrol_chip_per_chip", 10, ms(60_000)),
                ("host_enrolment_per_client", 1_000, ms(10)),
                ("host_enrolment_per_host", 10, ms(60_000)),
                ("renew_per_client", 10_000, ms(1)),
                ("renew_per_chip", 10, ms(60_000)),
            ]
        );
        assert_eq!(s.max_tracked_keys, 65_536);
        assert_eq!(RateLimitsConfig::default().settings().unwrap(), s);
    }

    #[test]
    fn refuses_rates_out_of_range_naming_the_key() {
        let mut config = RateLimitsConfig::default();
        config.renew_per_chip.burst = 0;
        let err = config.settings().unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "rate_limits.renew_per_chip",
                    reason: "burst must be 1 to 1000000"
                }
            ),
            "{err:?}"
        );
        let mut config = RateLimitsConfig::default();
        config.host_enrolment_per_host.interval_ms = 0;
        let err = config.settings().unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "rate_limits.host_enrolment_per_host",
                    ..
                }
            ),
            "{err:?}"
        );
        let config = RateLimitsConfig {
            max_tracked_keys: 0,
            ..RateLimitsConfig::default()
        };
        assert!(matches!(
            config.settings().unwrap_err(),
            ConfigError::Invalid {
                key: "rate_limits.max_tracked_keys",
                ..
            }
        ));
    }

    #[test]
    fn limits_count_separately_and_refuse_with_resource_exhausted() {
        let one = Rate::new(1, Duration::from_secs(60)).unwrap();
        let settings = RateLimitSettings::default()
            .with_rate(Limit::RenewPerChip, one)
            .with_rate(Limit::RenewPerClient, one);
        let clock = Arc::new(ManualMonotonic::new());
        let limits = IssuerRateLimits::new(&settings, clock.clone());

        limits.check(Limit::RenewPerChip, "chip-a").unwrap();
        limits.check(Limit::RenewPerClient, "chip-a").unwrap();
        limits.check(Limit::RenewPerChip, "chip-b").unwrap();
        let err = limits.check(Limit::RenewPerChip, "chip-a").unwrap_err();
        assert_eq!(err.code(), "rate_limited");
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "rate limit renew_per_chip reached (burst 1, then one request every 60 s); \
             retry in 60 s"
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "60");
        assert_eq!(
            status.metadata().get("chipward-code").unwrap(),
            "rate_limited"
        );

        // check_if spends nothing when the operation fails.
        let failed = limits.check_if(Limit::EnrolChipPerChip, "chip-a", || {
            Err::<(), _>(ServiceError::Random)
        });
        assert!(matches!(failed, Err(ServiceError::Random)));
        clock.advance(Duration::from_secs(60));
        limits.check(Limit::RenewPerChip, "chip-a").unwrap();
    }
}
