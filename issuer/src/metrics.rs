//! What the issuer counts for operators, and its Prometheus exposition.
//!
//! Labels take only fixed values: RPC names written into the handlers and
//! the stable error codes of [`crate::error::ServiceError::code`], which are
//! `&'static str` by construction. The audit log size is read from the
//! ledger at scrape time, so it stays right across restarts.

use std::sync::Arc;
use std::time::Duration;

use chipward_proto::metrics::{Counter, CounterVec, Exposition, HistogramVec, Render};

use crate::ledger::Ledger;

/// Counters and histograms for one issuer process.
#[derive(Debug, Default)]
pub struct IssuerMetrics {
    issued: Counter,
    renewed: Counter,
    revoked: Counter,
    refusals: CounterVec,
    latency: HistogramVec,
}

impl IssuerMetrics {
    /// Everything at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one license issued.
    pub fn issued(&self) {
        self.issued.inc();
    }

    /// Counts one license renewed.
    pub fn renewed(&self) {
        self.renewed.inc();
    }

    /// Counts one license revoked.
    pub fn revoked(&self) {
        self.revoked.inc();
    }

    /// Counts one refused request by its stable error code.
    pub fn refused(&self, code: &'static str) {
        self.refusals.inc(&[code]);
    }

    /// Records how long one call of `rpc` took.
    pub fn observe(&self, rpc: &'static str, took: Duration) {
        self.latency.observe(rpc, took.as_secs_f64());
    }

    /// Requests refused so far with the stable error `code`.
    pub fn refusals(&self, code: &'static str) -> u64 {
        self.refusals.value(&[code])
    }

    /// The Prometheus text exposition, with the audit log holding
    /// `audit_entries` entries (`None` when the ledger could not say).
    pub fn render(&self, audit_entries: Option<u64>) -> String {
        let mut e = Exposition::new();
        e.single_counter(
            "chipward_issuer_licenses_issued_total",
            "Licenses issued by IssueLicense.",
            &self.issued,
        );
        e.single_counter(
            "chipward_issuer_renewals_total",
            "Licenses renewed by RenewLicense.",
            &self.renewed,
        );
        e.single_counter(
            "chipward_issuer_revocations_total",
            "Licenses revoked by RevokeLicense.",
            &self.revoked,
        );
        e.counter(
            "chipward_issuer_refusals_total",
            "Issuer requests refused, by stable error code.",
            &["code"],
            &self.refusals,
        );
        e.histogram(
            "chipward_issuer_request_duration_seconds",
            "Time to answer an Issuer request, by RPC.",
            "rpc",
            &self.latency,
        );
        if let Some(size) = audit_entries {
            e.gauge(
                "chipward_issuer_audit_log_entries",
                "Entries in the audit log, read from the ledger at scrape time.",
                size,
            );
        }
        e.finish()
    }

    /// A renderer for [`chipward_proto::metrics::serve_metrics`] that reads
    /// the audit log size from `ledger` on the blocking pool.
    pub fn renderer(self: &Arc<Self>, ledger: Arc<dyn Ledger>) -> Render {
        let metrics = Arc::clone(self);
        Arc::new(move || {
            let metrics = Arc::clone(&metrics);
            let ledger = Arc::clone(&ledger);
            Box::pin(async move {
                let size = tokio::task::spawn_blocking(move || ledger.audit_size()).await;
                let size = match size {
                    Ok(Ok(n)) => Some(n),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "audit log size unavailable for metrics");
                        None
                    }
                    Err(_) => None,
                };
                metrics.render(size)
            })
        })
    }
}
