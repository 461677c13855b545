//! A one-line progress display on standard error for the long-running
//! commands (`chipward-load`, the demo's scale run). On a terminal the line
//! is redrawn in place every second and cleared at the end; elsewhere it is
//! shown only when asked for, as a new line every ten seconds, so a log
//! stays readable. Standard output keeps only the report.

use std::io::IsTerminal as _;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the line is redrawn on a terminal.
const TERMINAL_EVERY: Duration = Duration::from_secs(1);

/// How often a line is written when standard error is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A running progress display; it stops when finished or dropped.
#[derive(Debug)]
pub struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows `line(elapsed)` while the display runs: when standard error
    /// is a terminal, or anywhere with `force`. Must be called inside a
    /// Tokio runtime.
    pub fn start(force: bool, line: impl Fn(Duration) -> String + Send + 'static) -> Self {
        let terminal = std::io::stderr().is_terminal();
        if !terminal && !force {
            return Self {
                stop: None,
                task: None,
            };
        }
        let every = if terminal { TERMINAL_EVERY } else { LOG_EVERY };
        let (stop, mut stopped) = oneshot::channel::<()>();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(started + every, every);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        let text = line(started.elapsed());
                        if terminal {
                            eprint!("\r{text}\x1b[K");
                        } else {
                            eprintln!("{text}");
                        }
                    }
                }
            }
            if terminal {
                eprint!("\r\x1b[K");
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the display and, on a terminal, clears its line.
    pub async fn finish(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Time left to do `total` when `done` took `elapsed`, at the same rate;
/// `None` before anything is done.
pub fn eta(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64;
    Some(elapsed.mul_f64(left / done as f64))
}

/// A duration as `1h02m03s`, `2m03s` or `3s`, to the second.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_time_left_at_the_rate_so_far() {
        let quarter = eta(25, 100, Duration::from_secs(10));
        assert_eq!(quarter, Some(Duration::from_secs(30)));
        assert_eq!(eta(100, 100, Duration::from_secs(10)), Some(Duration::ZERO));
        assert_eq!(eta(0, 100, Duration::from_secs(10)), None);
    }

    #[test]
    fn writes_hours_minutes_and_seconds() {
        assert_eq!(clock(Duration::from_millis(3_900)), "3s");
        assert_eq!(clock(Duration::from_secs(123)), "2m03s");
        assert_eq!(clock(Duration::from_secs(3_723)), "1h02m03s");
    }
}
