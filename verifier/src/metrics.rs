//! What the verifier counts for operators, and its Prometheus exposition.
//!
//! Label values come from fixed lists ([`claims::EVERY_CLAIM`],
//! [`claims::code::EVERY_CODE`]); a name or code outside them is counted as
//! `other`, so no request can add series.

use std::sync::Arc;
use std::time::Duration;

use chipward_proto::metrics::{Counter, CounterVec, Exposition, HistogramVec, Render};
use chipward_proto::result::{AttestationResult, Status as Verdict};

use crate::claims;

/// Label value for a claim name or code outside the fixed lists.
pub const OTHER: &str = "other";

/// Counters and histograms for one verifier process.
#[derive(Debug, Default)]
pub struct VerifierMetrics {
    appraisals: CounterVec,
    refused: Counter,
    failed_claims: CounterVec,
    latency: HistogramVec,
    challenges: Counter,
}

impl VerifierMetrics {
    /// Everything at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one challenge handed out.
    pub fn challenge_issued(&self) {
        self.challenges.inc();
    }

    /// Counts one finished appraisal, its claims that did not pass and how
    /// long it took.
    pub fn appraised(&self, result: &AttestationResult, took: Duration) {
        let verdict = verdict_label(result.verdict);
        self.appraisals.inc(&[verdict]);
        for claim in result.claims.iter().filter(|c| c.status != Verdict::Pass) {
            let name = fixed(&claims::EVERY_CLAIM, &claim.claim);
            let code = fixed(&claims::code::EVERY_CODE, &claim.code);
            self.failed_claims.inc(&[name, code]);
        }
        self.latency.observe(verdict, took.as_secs_f64());
    }

    /// Counts one request refused before a result could be signed.
    pub fn refused(&self, took: Duration) {
        self.refused.inc();
        self.latency.observe("refused", took.as_secs_f64());
    }

    /// Appraisals so far that ended with `verdict`.
    pub fn appraisals(&self, verdict: Verdict) -> u64 {
        self.appraisals.value(&[verdict_label(verdict)])
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        e.counter(
            "chipward_verifier_appraisals_total",
            "Appraisals that produced a signed result, by overall verdict.",
            &["verdict"],
            &self.appraisals,
        );
        e.single_counter(
            "chipward_verifier_appraisals_refused_total",
            "Appraise requests refused with an error instead of a result.",
            &self.refused,
        );
        e.counter(
            "chipward_verifier_failed_claims_total",
            "Claims that failed or stayed unknown in signed results, by claim and code.",
            &["claim", "code"],
            &self.failed_claims,
        );
        e.histogram(
            "chipward_verifier_appraisal_duration_seconds",
            "Time to answer an appraise request, by verdict (refused for errors).",
            "verdict",
            &self.latency,
        );
        e.single_counter(
            "chipward_verifier_challenges_issued_total",
            "Challenges handed out.",
            &self.challenges,
        );
        e.finish()
    }

    /// A renderer for [`chipward_proto::metrics::serve_metrics`].
    pub fn renderer(self: &Arc<Self>) -> Render {
        let metrics = Arc::clone(self);
        Arc::new(move || {
            let text = metrics.render();
            Box::pin(async move { text })
        })
    }
}

fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Unknown => "unknown",
    }
}

/// `value` as the matching entry of `known`, or [`OTHER`].
fn fixed(known: &[&'static str], value: &str) -> &'static str {
    known.iter().copied().find(|k| *k == value).unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_codes_count_as_other() {
        assert_eq!(fixed(&claims::EVERY_CLAIM, "tenant"), "tenant");
        assert_eq!(fixed(&claims::EVERY_CLAIM, "made.up"), OTHER);
        assert_eq!(fixed(&claims::code::EVERY_CODE, "CW-SITE"), "CW-SITE");
        assert_eq!(fixed(&claims::code::EVERY_CODE, "ok"), OTHER);
    }
}
