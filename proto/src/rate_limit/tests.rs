use std::sync::atomic::AtomicUsize;

use tonic::Code;

use super::*;

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn limiter(
    burst: u32,
    interval: Duration,
    capacity: usize,
) -> (KeyedLimiter, Arc<ManualMonotonic>) {
    let clock = Arc::new(ManualMonotonic::new());
    let rate = Rate::new(burst, interval).unwrap();
    let limiter = KeyedLimiter::new("test_limit", rate, capacity, clock.clone()).unwrap();
    (limiter, clock)
}

/// How many of `n` requests for `key` pass right now.
fn passes(limiter: &KeyedLimiter, key: &str, n: usize) -> usize {
    (0..n).filter(|_| limiter.check(key).is_ok()).count()
}

fn wait(limiter: &KeyedLimiter, key: &str) -> Duration {
    limiter.check(key).unwrap_err().retry_after
}

#[test]
fn allows_exactly_the_burst_then_one_per_interval() {
    let (l, clock) = limiter(3, 10 * SEC, 100);
    assert_eq!(passes(&l, "a", 3), 3);
    // The fourth waits one whole interval: TAT 30 s, tolerance 20 s.
    assert_eq!(wait(&l, "a"), 10 * SEC);

    clock.advance(10 * SEC - MS);
    assert_eq!(wait(&l, "a"), MS);
    clock.advance(MS);
    assert_eq!(passes(&l, "a", 1), 1);
    assert_eq!(wait(&l, "a"), 10 * SEC);

    // Three intervals refill the whole burst and no more.
    clock.advance(30 * SEC);
    assert_eq!(passes(&l, "a", 10), 3);
}

#[test]
fn a_long_idle_key_gets_its_burst_and_not_more() {
    let (l, clock) = limiter(5, SEC, 100);
    assert_eq!(passes(&l, "a", 1), 1);
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(passes(&l, "a", 20), 5);
}

#[test]
fn refused_requests_do_not_lengthen_the_wait() {
    let (l, clock) = limiter(2, 4 * SEC, 100);
    assert_eq!(passes(&l, "a", 2), 2);
    assert_eq!(passes(&l, "a", 1_000), 0);
    assert_eq!(wait(&l, "a"), 4 * SEC);
    clock.advance(4 * SEC);
    assert_eq!(passes(&l, "a", 2), 1);
}

#[test]
fn keys_have_budgets_of_their_own() {
    let (l, _) = limiter(2, SEC, 100);
    assert_eq!(passes(&l, "chip-a", 5), 2);
    assert_eq!(passes(&l, "chip-b", 5), 2);
    assert_eq!(l.tracked(), 2);
}

#[test]
fn a_failed_operation_spends_nothing_and_a_limited_one_does_not_run() {
    let (l, _) = limiter(1, SEC, 100);
    for _ in 0..5 {
        assert_eq!(
            l.check_if("a", || Err::<(), _>("replay")),
            Ok(Err("replay"))
        );
    }
    assert_eq!(l.check_if("a", || Ok::<_, ()>(1)), Ok(Ok(1)));

    let ran = AtomicUsize::new(0);
    let refused = l.check_if("a", || {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok::<_, ()>(2)
    });
    assert_eq!(refused.unwrap_err().retry_after, SEC);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn concurrent_callers_cannot_overspend_one_key() {
    let (l, _) = limiter(100, SEC, 100);
    let passed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let n = passes(&l, "a", 50);
                passed.fetch_add(n, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(passed.load(Ordering::SeqCst), 100);
}

#[test]
fn never_tracks_more_keys_than_its_capacity() {
    let (l, _) = limiter(1, SEC, 64);
    for n in 0..10_000 {
        assert!(l.check(&format!("client-{n}")).is_ok());
        assert!(l.tracked() <= 64);
    }
    assert_eq!(l.tracked(), 64);
}

#[test]
fn a_full_table_first_forgets_keys_whose_budget_is_full_again() {
    let (l, clock) = limiter(2, 10 * SEC, 2);
    assert_eq!(passes(&l, "idle", 1), 1);
    clock.advance(10 * SEC);
    // "idle" is back to a full budget; "hot" has spent its budget.
    assert_eq!(passes(&l, "hot", 2), 2);
    assert!(l.check("newcomer").is_ok());
    assert_eq!(l.tracked(), 2);
    // "hot" is still remembered and still limited.
    assert_eq!(wait(&l, "hot"), 10 * SEC);
}

#[test]
fn a_full_table_forgets_the_key_nearest_to_a_full_budget() {
    let (l, _) = limiter(4, 10 * SEC, 2);
    assert_eq!(passes(&l, "light", 1), 1);
    assert_eq!(passes(&l, "hot", 4), 4);
    assert!(l.check("newcomer").is_ok());
    // "light" (10 s of debt) was forgotten and starts afresh with four;
    // "hot" (40 s of debt) was kept.
    assert_eq!(wait(&l, "hot"), 10 * SEC);
    assert_eq!(passes(&l, "light", 10), 4);
}

#[test]
fn churning_fresh_keys_never_resets_a_limited_key() {
    let (l, clock) = limiter(3, 10 * SEC, 16);
    assert_eq!(passes(&l, "hot", 3), 3);
    for n in 0..5_000 {
        assert!(l.check(&format!("spoofed-{n}")).is_ok());
        if n % 1_000 == 0 {
            clock.advance(MS);
        }
    }
    // Five milliseconds passed; the hot key still waits the rest.
    assert_eq!(wait(&l, "hot"), 10 * SEC - 5 * MS);
}

#[test]
fn refusals_name_the_limit_and_when_to_retry() {
    let (l, clock) = limiter(3, 10 * SEC, 100);
    assert_eq!(passes(&l, "a", 3), 3);
    let refused = l.check("a").unwrap_err();
    assert_eq!(
        refused.to_string(),
        "rate limit test_limit reached (burst 3, then one request every 10 s); retry in 10 s"
    );
    let status = refused.to_status();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), refused.to_string());
    assert_eq!(status.metadata().get(RETRY_AFTER).unwrap(), "10");
    assert_eq!(status.metadata().get(RETRY_AFTER_MS).unwrap(), "10000");

    // Partial seconds round up in the header and show in the message.
    clock.advance(8 * SEC + 500 * MS);
    let refused = l.check("a").unwrap_err();
    assert_eq!(refused.retry_after, 1500 * MS);
    assert!(refused.to_string().ends_with("retry in 1.5 s"), "{refused}");
    assert_eq!(
        (refused.retry_after_secs(), refused.retry_after_ms()),
        (2, 1500)
    );

    clock.advance(1250 * MS);
    let refused = l.check("a").unwrap_err();
    assert!(
        refused.to_string().ends_with("retry in 250 ms"),
        "{refused}"
    );
    assert_eq!(
        (refused.retry_after_secs(), refused.retry_after_ms()),
        (1, 250)
    );
}

#[test]
fn rates_and_capacities_are_range_checked() {
    assert_eq!(Rate::new(0, SEC), Err(RateError::Burst));
    assert_eq!(Rate::new(MAX_BURST + 1, SEC), Err(RateError::Burst));
    assert_eq!(
        Rate::new(1, Duration::from_micros(999)),
        Err(RateError::Interval)
    );
    assert_eq!(Rate::new(1, MAX_INTERVAL + MS), Err(RateError::Interval));
    let widest = Rate::new(MAX_BURST, MAX_INTERVAL).unwrap();
    assert_eq!(
        (widest.burst(), widest.interval()),
        (MAX_BURST, MAX_INTERVAL)
    );

    let config = RateConfig {
        burst: 20,
        interval_ms: 6_000,
    };
    assert_eq!(config.rate(), Rate::new(20, 6 * SEC));
    let zero = RateConfig {
        burst: 20,
        interval_ms: 0,
    };
    assert_eq!(zero.rate(), Err(RateError::Interval));

    let clock: Arc<dyn MonotonicClock> = Arc::new(ManualMonotonic::new());
    let rate = Rate::new(1, SEC).unwrap();
    for capacity in [0, MAX_CAPACITY + 1] {
        let err = KeyedLimiter::new("x", rate, capacity, Arc::clone(&clock)).unwrap_err();
        assert_eq!(err, RateError::Capacity);
    }
}

#[test]
fn the_widest_rate_does_not_overflow() {
    let (l, clock) = limiter(MAX_BURST, MAX_INTERVAL, 4);
    assert_eq!(passes(&l, "a", 3), 3);
    clock.advance(Duration::from_secs(u64::MAX / 4_000_000_000));
    assert_eq!(passes(&l, "a", 3), 3);
}

#[test]
fn the_system_clock_moves_forward() {
    let clock = SystemMonotonic::new();
    let a = clock.now();
    std::thread::sleep(MS);
    assert!(clock.now() > a);
}
