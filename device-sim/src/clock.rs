//! The demo's clock: the wall clock plus an offset the fleet can move
//! forward, shared by the in-process issuer, verifier, landmarks and chips,
//! so a run can attest again hours later without waiting hours.
//!
//! Services reached by URL keep their own clocks; a fleet run against them
//! gets a [`ScenarioClock::wall`] that refuses to move.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chipward_verifier::service as verifier_service;

/// Wall-clock time plus a movable offset.
#[derive(Debug)]
pub struct ScenarioClock {
    offset_ms: AtomicI64,
    movable: bool,
}

impl ScenarioClock {
    /// The wall clock; [`Self::advance`] refuses to move it.
    pub fn wall() -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            movable: false,
        }
    }

    /// A clock that starts at the wall clock and can move forward.
    pub fn movable() -> Self {
        Self {
            offset_ms: AtomicI64::new(0),
            movable: true,
        }
    }

    /// Whether [`Self::advance`] can move it.
    pub fn can_move(&self) -> bool {
        self.movable
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let wall = verifier_service::system_clock()();
        wall.saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: i64) -> anyhow::Result<()> {
        anyhow::ensure!(self.movable, "this clock follows the wall clock");
        anyhow::ensure!(secs >= 0, "the clock only moves forward");
        self.offset_ms
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
        Ok(())
    }

    /// The clock as the verifier service takes one.
    pub fn for_verifier(self: &Arc<Self>) -> verifier_service::Clock {
        let me = Arc::clone(self);
        Arc::new(move || me.now_ms())
    }
}

impl chipward_issuer::Clock for ScenarioClock {
    fn now(&self) -> i64 {
        Self::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only_when_movable() {
        let clock = ScenarioClock::movable();
        let before = clock.now();
        clock.advance(4 * 3_600).unwrap();
        let moved = clock.now() - before;
        assert!((4 * 3_600..4 * 3_600 + 5).contains(&moved), "{moved}");
        assert!(clock.advance(-1).is_err());

        let wall = ScenarioClock::wall();
        assert!(wall.advance(1).is_err());
        let drift = (wall.now() - verifier_service::system_clock()() / 1000).abs();
        assert!(drift <= 1, "{drift}");
    }
}
