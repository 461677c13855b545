//! Group commit for issuance: licenses minted by concurrent requests are
//! stored in one ledger transaction, so one durable commit (one fsync on
//! SQLite) acknowledges many licenses. Each request still waits until its
//! own license is committed, and gets its own outcome.
//!
//! One thread owns the writing: it blocks for the first pending license,
//! takes whatever else is already queued (up to [`MAX_BATCH`]), commits, and
//! answers each waiter. A lone request is committed at once; batching only
//! happens when requests arrive while a commit is running.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::ServiceError;
use crate::ledger::{AuditRecord, Ledger, LedgerError, LicenseRecord};

/// Most licenses one commit takes.
pub const MAX_BATCH: usize = 1_024;

/// Pending licenses waiting for the writer.
const QUEUE: usize = 8 * MAX_BATCH;

type Reply = oneshot::Sender<Result<u64, LedgerError>>;

/// The handle requests use; dropping every handle stops the writer.
#[derive(Clone, Debug)]
pub struct IssueBatcher {
    queue: mpsc::Sender<(LicenseRecord, AuditRecord, Reply)>,
}

impl IssueBatcher {
    /// Starts the writer thread over `ledger`.
    pub fn start(ledger: Arc<dyn Ledger>) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("chipward-issue-writer".into())
            .spawn(move || write_batches(ledger.as_ref(), pending))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "issue writer did not start"));
        Self { queue }
    }

    /// Stores `license` with its audit record; returns its log index once
    /// committed.
    pub async fn store(
        &self,
        license: LicenseRecord,
        audit: AuditRecord,
    ) -> Result<u64, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((license, audit, reply))
            .await
            .map_err(|_| ServiceError::TaskFailed)?;
        answer
            .await
            .map_err(|_| ServiceError::TaskFailed)?
            .map_err(ServiceError::from)
    }
}

fn write_batches(
    ledger: &dyn Ledger,
    mut pending: mpsc::Receiver<(LicenseRecord, AuditRecord, Reply)>,
) {
    while let Some(first) = pending.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<(LicenseRecord, AuditRecord)>, Vec<Reply>) =
            batch.into_iter().map(|(l, a, r)| ((l, a), r)).unzip();
        match ledger.insert_licenses(&items) {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A waiter that gave up needs no answer.
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let unavailable = matches!(e, LedgerError::Unavailable(_));
                let shared = Arc::new(e);
                for reply in replies {
                    let each = Box::new(SharedError(Arc::clone(&shared)));
                    let _ = reply.send(Err(if unavailable {
                        LedgerError::Unavailable(each)
                    } else {
                        LedgerError::Backend(each)
                    }));
                }
            }
        }
    }
}

/// One batch failure reported to each of its waiters.
#[derive(Debug)]
struct SharedError(Arc<LedgerError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch commit failed: {}", self.0)
    }
}

impl std::error::Error for SharedError {}
