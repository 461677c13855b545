//! What this process has used so far, as Linux reports it in `/proc`: peak
//! resident memory (`VmHWM`) and CPU time, user and system, summed over
//! all threads (servers started in-process count towards it), and the CPU
//! time of the calling thread alone.
//!
//! Reads only this process's own `/proc` files; where they are missing
//! (not Linux) the figures are absent, not guessed.

use std::fmt;
use std::time::Duration;

/// Clock ticks per second of the CPU times in `/proc/self/stat`.
// Limitation: taken as 100, the USER_HZ every mainstream Linux
// architecture exports; reading sysconf(_SC_CLK_TCK) would need unsafe code.
const TICKS_PER_SECOND: u64 = 100;

/// Peak memory and CPU time of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Peak resident set size, KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU time in user mode.
    pub user: Option<Duration>,
    /// CPU time in the kernel on the process's behalf.
    pub system: Option<Duration>,
}

impl Usage {
    /// This process, now.
    pub fn current() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let times = cpu_times(&stat);
        Self {
            peak_rss_kib: peak_rss_kib(&status),
            user: times.map(|t| t.0),
            system: times.map(|t| t.1),
        }
    }

    /// User plus system time.
    pub fn cpu(&self) -> Option<Duration> {
        Some(self.user? + self.system?)
    }
}

impl fmt::Display for Usage {
    /// `peak memory 312.4 MiB (VmHWM); CPU time 1520.3 s user + 80.1 s
    /// system`, with `-` for a figure not available.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peak_rss_kib {
            Some(kib) => write!(f, "peak memory {:.1} MiB (VmHWM)", kib as f64 / 1024.0)?,
            None => write!(f, "peak memory -")?,
        }
        match (self.user, self.system) {
            (Some(user), Some(system)) => write!(
                f,
                "; CPU time {:.1} s user + {:.1} s system",
                user.as_secs_f64(),
                system.as_secs_f64()
            ),
            _ => write!(f, "; CPU time -"),
        }
    }
}

/// CPU time, user plus system, of the calling thread alone, to the clock
/// tick (10 ms).
pub fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let (user, system) = cpu_times(&stat)?;
    Some(user + system)
}

/// `VmHWM` from `/proc/self/status` text, KiB.
fn peak_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(value)
}

/// User and system time from `/proc/self/stat` text (fields 14 and 15,
/// counted after the command name, which may itself hold spaces and
/// parentheses and so ends at the last `)`).
fn cpu_times(stat: &str) -> Option<(Duration, Duration)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name come field 3 (state) onwards.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut ticks = || -> Option<Duration> {
        let t: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_millis(t * 1000 / TICKS_PER_SECOND))
    };
    Some((ticks()?, ticks()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_memory_in_kib() {
        let status =
            "Name:\tchipward-demo\nVmPeak:\t  900000 kB\nVmHWM:\t  319876 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(peak_rss_kib(status), Some(319_876));
        assert_eq!(peak_rss_kib("VmHWM:\t 12 MB\n"), None);
        assert_eq!(peak_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_times_past_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194304 10 0 0 0 12345 678 0 0 20 0 9 0";
        let (user, system) = cpu_times(stat).unwrap();
        assert_eq!(user, Duration::from_millis(123_450));
        assert_eq!(system, Duration::from_millis(6_780));
        assert_eq!(cpu_times("4242 (x) S 1 2"), None);
    }

    #[test]
    fn this_threads_cpu_time_grows_with_work() {
        let before = thread_cpu().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        // A busy thread gets most of 200 ms even on a shared machine; the
        // clock counts in 10 ms ticks.
        let spent = thread_cpu().unwrap() - before;
        assert!(spent >= Duration::from_millis(20), "{spent:?}");
        assert!(spent <= Duration::from_millis(220), "{spent:?}");
    }

    #[test]
    fn renders_figures_and_gaps() {
        let usage = Usage {
            peak_rss_kib: Some(2048),
            user: Some(Duration::from_millis(1500)),
            system: Some(Duration::from_millis(300)),
        };
        assert_eq!(
            usage.to_string(),
            "peak memory 2.0 MiB (VmHWM); CPU time 1.5 s user + 0.3 s system"
        );
        assert_eq!(usage.cpu(), Some(Duration::from_millis(1800)));
        assert_eq!(Usage::default().to_string(), "peak memory -; CPU time -");
    }
}
