//! Pieces the benchmark commands share (`chipward-bench`, `chipward-load`,
//! the demo's scale run): raw ring signature operations that serve as
//! baselines, the loop that times them, and the machine and date a report
//! names.
//!
//! Keys and messages are generated here; nothing is attacker-controlled.
//! Rates are of time spent in the operation alone, so the figures say what
//! the machine could do at best, not what it did under load.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use chipward_certs::keys::{Ed25519Key, P384Key};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED, ED25519, Ed25519KeyPair, UnparsedPublicKey};

use crate::usage::thread_cpu;

/// About the size of a signed SPDM measurements transcript, bytes.
pub const P384_MESSAGE_LEN: usize = 600;

/// About the size of a license token's signed structure, bytes.
pub const ED25519_MESSAGE_LEN: usize = 300;

/// Runs `work` over items from `prepare` for `warm`, then for `span`, of
/// time spent in `work` alone; returns items per second of the second run.
/// `prepare` runs untimed whenever the items run out.
pub fn rate<T>(
    warm: Duration,
    span: Duration,
    prepare: impl Fn() -> anyhow::Result<Vec<T>>,
    work: impl Fn(&T) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let run = |span: Duration| -> anyhow::Result<f64> {
        let (mut done, mut busy) = (0u64, Duration::ZERO);
        while busy < span {
            let items = prepare()?;
            let start = Instant::now();
            for item in &items {
                work(item)?;
                done += 1;
                if busy + start.elapsed() >= span {
                    break;
                }
            }
            busy += start.elapsed();
        }
        Ok(done as f64 / busy.as_secs_f64())
    };
    run(warm)?;
    run(span)
}

/// Runs `work` on this thread until it has spent `span` of its own CPU
/// time (after a fifth of that to warm up); returns operations per CPU
/// second. Unlike [`rate`], time other processes take from this thread's
/// core does not count, so the figure holds on a shared machine.
pub fn cpu_rate(
    span: Duration,
    work: &(impl Fn(&()) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<f64> {
    let run = |span: Duration| -> anyhow::Result<f64> {
        let start = thread_cpu().context("this thread's CPU time is not readable")?;
        let mut done = 0u64;
        loop {
            for _ in 0..64 {
                work(&())?;
            }
            done += 64;
            let spent = thread_cpu().context("this thread's CPU time is not readable")? - start;
            if spent >= span {
                return Ok(done as f64 / spent.as_secs_f64());
            }
        }
    };
    run(span / 5)?;
    run(span)
}

/// [`rate`] of `work` on `threads` threads at once, summed: what the
/// machine does when every core runs the operation.
pub fn parallel_rate(
    threads: usize,
    warm: Duration,
    span: Duration,
    work: &(impl Fn(&()) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<f64> {
    std::thread::scope(|scope| {
        let running: Vec<_> = (0..threads.max(1))
            .map(|_| scope.spawn(|| rate(warm, span, unprepared, work)))
            .collect();
        running.into_iter().try_fold(0.0, |sum, thread| {
            let per_s = thread
                .join()
                .map_err(|_| anyhow!("baseline thread panicked"))??;
            Ok(sum + per_s)
        })
    })
}

/// Items for work that needs no preparation.
pub fn unprepared() -> anyhow::Result<Vec<()>> {
    Ok(vec![(); 4096])
}

/// One ring P-384 verification of a fixed message under a fresh key.
pub fn p384_verify_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()> + Sync> {
    let key = P384Key::generate()?;
    let message = vec![0x5a; P384_MESSAGE_LEN];
    let signature = key.sign_fixed(&message)?;
    // The SPKI ends with the 97-byte uncompressed point ring wants.
    let spki = key.public_key_spki_der();
    let point = spki
        .get(spki.len().saturating_sub(97)..)
        .context("no point")?;
    let public = UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point.to_vec());
    Ok(move |_: &()| {
        let verified = public.verify(black_box(&message), black_box(&signature));
        verified.map_err(|_| anyhow!("baseline P-384 signature does not verify"))
    })
}

/// One ring P-384 signature over a fixed message: what a chip spends on
/// each piece of evidence.
pub fn p384_sign_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()> + Sync> {
    let key = P384Key::generate()?;
    let message = vec![0x5a; P384_MESSAGE_LEN];
    Ok(move |_: &()| {
        black_box(key.sign_fixed(black_box(&message))?);
        Ok(())
    })
}

/// One ring Ed25519 signature over a fixed message with a fresh key.
pub fn ed25519_sign_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()> + Sync> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| anyhow!("Ed25519 key generation failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow!("generated Ed25519 key does not load"))?;
    let message = vec![0xa5; ED25519_MESSAGE_LEN];
    Ok(move |_: &()| {
        black_box(pair.sign(black_box(&message)));
        Ok(())
    })
}

/// One ring Ed25519 verification of a fixed message under a fresh key.
pub fn ed25519_verify_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()> + Sync> {
    let key = Ed25519Key::generate()?;
    let message = vec![0xa5; ED25519_MESSAGE_LEN];
    let signature = key.sign(&message);
    let public = UnparsedPublicKey::new(&ED25519, key.public_key().to_vec());
    Ok(move |_: &()| {
        let verified = public.verify(black_box(&message), black_box(&signature));
        verified.map_err(|_| anyhow!("baseline Ed25519 signature does not verify"))
    })
}

/// The signature work of one appraisal once the chip's chain is cached:
/// the evidence's P-384 signature and the license token's Ed25519
/// signature verified, and the result signed with Ed25519.
pub fn appraisal_signatures_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()> + Sync> {
    let evidence = p384_verify_op()?;
    let license = ed25519_verify_op()?;
    let result = ed25519_sign_op()?;
    Ok(move |item: &()| {
        evidence(item)?;
        license(item)?;
        result(item)
    })
}

/// [`appraisal_signatures_op`] plus the chip's P-384 signature over its
/// evidence: the signatures of one turn of the whole loop, for when the
/// simulated chips and the verifier share the machine.
pub fn loop_signatures_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()> + Sync> {
    let verifier = appraisal_signatures_op()?;
    let chip = p384_sign_op()?;
    Ok(move |item: &()| {
        chip(item)?;
        verifier(item)
    })
}

/// Cores this process may use and the CPU model, as `2 cores, <model>`.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu_model(&cpuinfo).unwrap_or("unknown CPU");
    format!("{cores} cores, {model}")
}

/// The first `model name` in `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim())
}

/// Now as an RFC 3339 UTC timestamp.
pub fn utc_now() -> anyhow::Result<String> {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(utc_timestamp(since.as_secs()))
}

/// `secs` after the Unix epoch as an RFC 3339 UTC timestamp.
pub fn utc_timestamp(secs: u64) -> String {
    let leap = |y: u64| {
        u64::from(y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)))
    };
    let year_len = |y: u64| 365 + leap(y);
    let (mut days, clock, mut year, mut month) = (secs / 86_400, secs % 86_400, 1970, 1);
    while days >= year_len(year) {
        days -= year_len(year);
        year += 1;
    }
    // December takes whatever the first eleven months leave.
    for length in [31, 28 + leap(year), 31, 30, 31, 30, 31, 31, 30, 31, 30] {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    let (day, h, m, s) = (days + 1, clock / 3600, clock / 60 % 60, clock % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_cross_leap_days_and_year_ends() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        // 2024-02-29 12:34:56 UTC: 19782 days after the epoch.
        assert_eq!(
            utc_timestamp(19_782 * 86_400 + 45_296),
            "2024-02-29T12:34:56Z"
        );
        // The last second of 2026: 20818 days, then 86399 s.
        assert_eq!(
            utc_timestamp(20_818 * 86_400 + 86_399),
            "2026-12-31T23:59:59Z"
        );
    }

    #[test]
    fn reads_the_first_cpu_model() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Example CPU @ 2.0GHz\n\
                    processor\t: 1\nmodel name\t: Other\n";
        assert_eq!(cpu_model(text), Some("Example CPU @ 2.0GHz"));
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn baseline_operations_succeed() {
        for op in [
            Box::new(appraisal_signatures_op().unwrap()) as Box<dyn Fn(&()) -> anyhow::Result<()>>,
            Box::new(loop_signatures_op().unwrap()),
        ] {
            op(&()).unwrap();
        }
    }
}
