//! Rate limits for the services: the generic cell rate algorithm (GCRA)
//! per key, over a table of keys whose size is bounded.
//!
//! A [`Rate`] allows `burst` requests at once and then one every
//! `interval`. GCRA keeps one number per key, the theoretical arrival time
//! (TAT): the instant at which the key's budget would be full again. A
//! request at `now` is allowed when `TAT - now <= (burst - 1) * interval`,
//! and then moves the TAT to `max(TAT, now) + interval`; a refused request
//! changes nothing, so hammering a limited key does not extend its wait.
//!
//! Keys are attacker-influenced strings (client addresses, chip ids); they
//! are stored as their SHA-256, so every tracked key costs the same memory
//! whatever its length. Time comes from a [`MonotonicClock`] the caller
//! injects; tests move a [`ManualMonotonic`] instead of sleeping.
//!
//! # Eviction
//!
//! A [`KeyedLimiter`] tracks at most `capacity` keys. When a new key
//! arrives at a full table, the key with the earliest TAT is forgotten:
//!
//! 1. A key whose TAT has passed has its full budget again; forgetting it
//!    loses nothing, since an unknown key starts with a full budget too.
//!    Such keys have the earliest TATs, so they always go first.
//! 2. Otherwise the key forgotten is the one nearest to a full budget. A
//!    key that spent its budget (a hot key) has a TAT about `burst *
//!    interval` ahead and is forgotten last: to reset it, an attacker must
//!    first push every other tracked key further into debt than it, which
//!    takes `capacity` times that debt in requests, each one counted
//!    against the attacker's own keys, within the time the debt lasts.
//!    Fresh keys an attacker churns through have a TAT one interval ahead
//!    and are forgotten before any key that is really limited.
//!
//! What this module does not do: share state between replicas (each
//! process counts on its own) or decide what a key is; see
//! [`crate::access::Caller::key`] for the client key (the client certificate).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use thiserror::Error;
use tonic::metadata::{MetadataMap, MetadataValue};

/// Metadata key of the whole seconds to wait before retrying, rounded up
/// (as HTTP's `Retry-After`).
pub const RETRY_AFTER: &str = "retry-after";
/// Metadata key of the milliseconds to wait before retrying, rounded up.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";
/// Largest burst a rate may allow.
pub const MAX_BURST: u32 = 1_000_000;
/// Longest interval a rate may have: one day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// Most keys one limiter may be configured to track.
pub const MAX_CAPACITY: usize = 10_000_000;

/// A key's budget: `burst` requests at once, then one every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    burst: u32,
    interval: Duration,
}

impl Rate {
    /// A rate of `burst` (1 to [`MAX_BURST`]) requests at once, then one
    /// every `interval` (1 ms to [`MAX_INTERVAL`]).
    pub fn new(burst: u32, interval: Duration) -> Result<Self, RateError> {
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(RateError::Burst);
        }
        if !(Duration::from_millis(1)..=MAX_INTERVAL).contains(&interval) {
            return Err(RateError::Interval);
        }
        Ok(Self { burst, interval })
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time between requests once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn interval_nanos(&self) -> u64 {
        duration_nanos(self.interval)
    }

    /// How far ahead of now a TAT may lie for a request to pass.
    fn tolerance_nanos(&self) -> u64 {
        self.interval_nanos()
            .saturating_mul(u64::from(self.burst) - 1)
    }
}

/// A rate as written in a configuration file: `{ burst = 20,
/// interval_ms = 6000 }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests allowed at once; 1 to 1,000,000.
    pub burst: u32,
    /// Milliseconds between requests once the burst is spent; 1 to
    /// 86,400,000 (one day).
    pub interval_ms: u64,
}

impl RateConfig {
    /// The rate, after checking both ranges.
    pub fn rate(&self) -> Result<Rate, RateError> {
        Rate::new(self.burst, Duration::from_millis(self.interval_ms))
    }
}

/// Why a rate is refused.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateError {
    /// The burst is out of range.
    #[error("burst must be 1 to {MAX_BURST}")]
    Burst,
    /// The interval is out of range.
    #[error("interval_ms must be 1 to 86400000")]
    Interval,
    /// The key capacity is out of range.
    #[error("max_tracked_keys must be 1 to {MAX_CAPACITY}")]
    Capacity,
}

/// Tells monotonic time: the time since an arbitrary origin fixed when the
/// clock was made. Wall-clock steps must not move it.
pub trait MonotonicClock: Send + Sync {
    /// Time since the origin.
    fn now(&self) -> Duration;
}

/// The operating system's monotonic clock, from the moment it was made.
#[derive(Clone, Copy, Debug)]
pub struct SystemMonotonic {
    origin: Instant,
}

impl SystemMonotonic {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemMonotonic {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock for SystemMonotonic {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told; for tests.
#[derive(Debug, Default)]
pub struct ManualMonotonic {
    nanos: AtomicU64,
}

impl ManualMonotonic {
    /// A clock at its origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }
}

impl MonotonicClock for ManualMonotonic {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// A request refused because its key spent its budget.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "rate limit {limit} reached (burst {}, then one request every {}); retry in {}",
    rate.burst,
    human(rate.interval),
    human(*retry_after)
)]
pub struct RateLimited {
    /// The limit's name, as configured (for example
    /// `appraise_per_chip`).
    pub limit: &'static str,
    /// The limit's rate.
    pub rate: Rate,
    /// How long until one request would pass.
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds to wait, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_nanos().div_ceil(1_000_000_000).max(1);
        u64::try_from(secs).unwrap_or(u64::MAX)
    }

    /// Milliseconds to wait, rounded up, at least 1.
    pub fn retry_after_ms(&self) -> u64 {
        let ms = self.retry_after.as_nanos().div_ceil(1_000_000).max(1);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Adds the [`RETRY_AFTER`] and [`RETRY_AFTER_MS`] entries.
    pub fn annotate(&self, metadata: &mut MetadataMap) {
        metadata.insert(RETRY_AFTER, MetadataValue::from(self.retry_after_secs()));
        metadata.insert(RETRY_AFTER_MS, MetadataValue::from(self.retry_after_ms()));
    }

    /// `RESOURCE_EXHAUSTED` with this message and the retry metadata.
    pub fn to_status(&self) -> tonic::Status {
        let mut status = tonic::Status::resource_exhausted(self.to_string());
        self.annotate(status.metadata_mut());
        status
    }
}

/// One limit: a [`Rate`] per key, for at most `capacity` keys.
pub struct KeyedLimiter {
    name: &'static str,
    rate: Rate,
    capacity: usize,
    clock: Arc<dyn MonotonicClock>,
    table: Mutex<Table>,
}

impl std::fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl KeyedLimiter {
    /// A limit named `name` (the name its refusals carry) that gives each
    /// key `rate`, tracks at most `capacity` keys (1 to
    /// [`MAX_CAPACITY`]) and reads time from `clock`.
    pub fn new(
        name: &'static str,
        rate: Rate,
        capacity: usize,
        clock: Arc<dyn MonotonicClock>,
    ) -> Result<Self, RateError> {
        if !(1..=MAX_CAPACITY).contains(&capacity) {
            return Err(RateError::Capacity);
        }
        Ok(Self {
            name,
            rate,
            capacity,
            clock,
            table: Mutex::new(Table::default()),
        })
    }

    /// The limit's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The rate each key gets.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Spends one request of `key`'s budget, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), RateLimited> {
        self.check_if(key, || Ok::<(), ()>(()))
            .map(|_: Result<(), ()>| ())
    }

    /// Runs `op` if `key` has a request left, and spends it only if `op`
    /// succeeds; `op` runs under this limiter's lock, so concurrent calls
    /// for one key cannot overspend. When the budget is spent, `op` does
    /// not run.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use chipward_proto::rate_limit::{KeyedLimiter, ManualMonotonic, Rate};
    ///
    /// let clock = Arc::new(ManualMonotonic::new());
    /// let rate = Rate::new(1, Duration::from_secs(10)).unwrap();
    /// let limit = KeyedLimiter::new("demo", rate, 100, clock.clone()).unwrap();
    /// // A failing operation spends nothing...
    /// assert_eq!(limit.check_if("chip", || Err::<(), _>("replay")), Ok(Err("replay")));
    /// // ...so the one request of the burst is still there.
    /// assert_eq!(limit.check_if("chip", || Ok::<_, ()>(7)), Ok(Ok(7)));
    /// let refused = limit.check("chip").unwrap_err();
    /// assert_eq!(refused.retry_after, Duration::from_secs(10));
    /// clock.advance(Duration::from_secs(10));
    /// assert!(limit.check("chip").is_ok());
    /// ```
    pub fn check_if<T, E>(
        &self,
        key: &str,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<Result<T, E>, RateLimited> {
        let key = hash_key(key);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let now = duration_nanos(self.clock.now());

        // 1. The key's TAT; an unknown or idle key starts from now.
        let tat = table.tat.get(&key).copied().unwrap_or(now).max(now);

        // 2. Refuse when it lies beyond the burst's tolerance.
        let ahead = tat - now;
        let tolerance = self.rate.tolerance_nanos();
        if ahead > tolerance {
            return Err(RateLimited {
                limit: self.name,
                rate: self.rate,
                retry_after: Duration::from_nanos(ahead - tolerance),
            });
        }

        // 3. Spend only what succeeded.
        let out = op();
        if out.is_ok() {
            let next = tat.saturating_add(self.rate.interval_nanos());
            table.set(key, next, self.capacity);
        }
        Ok(out)
    }

    /// How many keys are tracked now.
    pub fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tat
            .len()
    }
}

type KeyHash = [u8; 32];

/// Each key's TAT, and the keys ordered by TAT for eviction.
#[derive(Debug, Default)]
struct Table {
    tat: HashMap<KeyHash, u64>,
    by_tat: BTreeSet<(u64, KeyHash)>,
}

impl Table {
    /// Sets `key`'s TAT, first forgetting the key with the earliest TAT if
    /// a new key would take the table past `capacity`.
    fn set(&mut self, key: KeyHash, tat: u64, capacity: usize) {
        match self.tat.insert(key, tat) {
            Some(old) => {
                self.by_tat.remove(&(old, key));
            }
            None if self.tat.len() > capacity => {
                // The new key's TAT is not indexed yet, so it is not the
                // one forgotten.
                if let Some(first) = self.by_tat.pop_first() {
                    self.tat.remove(&first.1);
                }
            }
            None => {}
        }
        self.by_tat.insert((tat, key));
    }
}

fn hash_key(key: &str) -> KeyHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A duration for people: whole milliseconds below a second, else seconds
/// with up to three decimals.
fn human(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let text = format!("{}.{:03}", ms / 1000, ms % 1000);
    format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests;
