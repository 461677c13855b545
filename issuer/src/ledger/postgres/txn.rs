//! Transactions: the one place where ledger calls meet PostgreSQL's
//! isolation levels, and where failed attempts are retried.
//!
//! Every ledger call hands a body to [`run`], which runs it in a
//! transaction of the call's [`Mode`] and commits. Writes run SERIALIZABLE,
//! so two issuer processes sharing a database cannot interleave into a
//! state no one-at-a-time order would give; PostgreSQL aborts one side with
//! a serialization failure instead, and `run` tries that call again from
//! the start, up to the configured number of attempts, with a short random
//! pause between. Bodies therefore must not act outside the database.
//!
//! A body that wants a table lock must take it as its first statement: a
//! SERIALIZABLE transaction's snapshot is taken at its first query, and a
//! lock taken before that means the snapshot already sees whatever the
//! previous holder committed. Calls that may append to the audit log run
//! in [`Mode::Log`], where [`run`] itself takes the log's lock before
//! anything else, so that the body's snapshot already holds every entry
//! committed before it (see `audit`).

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, Transaction};
use thiserror::Error;

use super::audit;
use super::pool::Pool;
use crate::ledger::LedgerError;

/// How a call's transaction runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// SERIALIZABLE, read-write: a call that writes but never logs.
    Write,
    /// SERIALIZABLE, read-write, holding the audit log's lock from the
    /// first statement on: every call that may append to the log. Such
    /// calls run one at a time across every process sharing the database.
    Log,
    /// REPEATABLE READ, read-only: every read of the call sees one
    /// snapshot. Never fails to serialize.
    Read,
    /// READ COMMITTED: schema set-up, which serializes itself with an
    /// advisory lock so that each statement sees what an earlier opener
    /// committed.
    Schema,
}

/// Why a transaction body stopped.
#[derive(Debug, Error)]
pub(super) enum Failure {
    /// PostgreSQL refused or failed; [`run`] decides whether to retry.
    #[error(transparent)]
    Db(postgres::Error),
    /// A ledger rule refused the call; returned as it is.
    #[error(transparent)]
    Ledger(LedgerError),
}

impl From<postgres::Error> for Failure {
    fn from(err: postgres::Error) -> Self {
        Self::Db(err)
    }
}

impl From<LedgerError> for Failure {
    fn from(err: LedgerError) -> Self {
        Self::Ledger(err)
    }
}

/// What a transaction body returns.
pub(super) type Step<T> = Result<T, Failure>;

/// Runs `body` in a transaction of `mode` and commits it, trying the whole
/// call again, at most `attempts` times in all, while PostgreSQL reports a
/// conflict with a concurrent transaction or a pooled connection turns out
/// to be dead when the transaction begins.
pub(super) fn run<T>(
    pool: &Pool,
    attempts: u32,
    mode: Mode,
    mut body: impl FnMut(&mut Transaction<'_>) -> Step<T>,
) -> Result<T, LedgerError> {
    let mut attempt = 1;
    loop {
        let mut lent = pool.get()?;
        let (err, began) = match once(lent.client(), mode, &mut body) {
            Ok(value) => return Ok(value),
            Err(Attempt::Refused(err)) => return Err(err),
            Err(Attempt::NotBegun(err)) => (err, false),
            Err(Attempt::Failed(err)) => (err, true),
        };
        // A dead connection leaves the pool here, before the next attempt.
        drop(lent);

        // A BEGIN that failed ran nothing; when the connection is what
        // failed (a server that ended it while idle), a new one may work.
        let retry = if began {
            conflict(&err)
        } else {
            unavailable(&err)
        };
        if !retry || attempt >= attempts {
            return Err(classify(err));
        }
        tracing::debug!(attempt, code = ?err.code(), "ledger transaction retried");
        std::thread::sleep(pause(attempt));
        attempt += 1;
    }
}

/// How one attempt ended, when it did not commit.
enum Attempt {
    /// BEGIN failed: nothing ran.
    NotBegun(postgres::Error),
    /// The body or COMMIT failed.
    Failed(postgres::Error),
    /// A ledger rule refused; the transaction rolled back.
    Refused(LedgerError),
}

fn once<T>(
    client: &mut Client,
    mode: Mode,
    body: &mut impl FnMut(&mut Transaction<'_>) -> Step<T>,
) -> Result<T, Attempt> {
    let builder = client.build_transaction();
    let builder = match mode {
        Mode::Write | Mode::Log => builder.isolation_level(IsolationLevel::Serializable),
        Mode::Read => builder
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true),
        Mode::Schema => builder.isolation_level(IsolationLevel::ReadCommitted),
    };
    let mut tx = builder.start().map_err(Attempt::NotBegun)?;
    if mode == Mode::Log {
        audit::lock(&mut tx).map_err(Attempt::Failed)?;
    }

    // Limitation: bodies pass SQL text, which the driver prepares anew on
    // every call: one round trip per statement more than a statement cache
    // on the connection would need.

    // On an error the transaction rolls back as it drops.
    let value = match body(&mut tx) {
        Ok(value) => value,
        Err(Failure::Db(err)) => return Err(Attempt::Failed(err)),
        Err(Failure::Ledger(err)) => return Err(Attempt::Refused(err)),
    };
    tx.commit().map_err(Attempt::Failed)?;
    Ok(value)
}

/// Whether `err` says a concurrent transaction got in the way, so that the
/// same call may well succeed when tried again.
///
/// A unique violation counts: every body looks for the row it is about to
/// insert first, so a violation means another transaction inserted it
/// meanwhile, and the next attempt sees that row and answers with the
/// ledger's own error (PostgreSQL 15 manual, section 13.5).
fn conflict(err: &postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            | Some(&SqlState::T_R_DEADLOCK_DETECTED)
            | Some(&SqlState::UNIQUE_VIOLATION)
    )
}

/// A random pause before attempt `attempt + 1`: between half and all of
/// 4 ms doubled per attempt, at most 256 ms, so that the processes that
/// collided do not collide again in step.
fn pause(attempt: u32) -> Duration {
    let ceiling_us = 4_000u64 << attempt.min(6);
    let random = RandomState::new().hash_one(attempt);
    Duration::from_micros(ceiling_us / 2 + random % (ceiling_us / 2))
}

/// Splits PostgreSQL failures into "the database cannot serve now" and
/// everything else.
///
/// Unavailable: a lost connection, an I/O error, and the SQLSTATE classes
/// 08 (connection), 28 (authorization), 53 (insufficient resources),
/// 57 (operator intervention) and 3D (no such database), a read-only
/// server, a lock that did not come free within the lock timeout, and
/// conflicts that outlasted every attempt.
pub(super) fn classify(err: postgres::Error) -> LedgerError {
    if unavailable(&err) {
        LedgerError::Unavailable(Box::new(err))
    } else {
        LedgerError::Backend(Box::new(err))
    }
}

fn unavailable(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let io = std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>());
    let Some(code) = err.code() else {
        return io;
    };
    let class = code.code().get(..2).unwrap_or_default();
    matches!(class, "08" | "28" | "53" | "57" | "3D")
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stay_bounded() {
        for attempt in 1..=20 {
            let ceiling = Duration::from_micros(4_000 << attempt.min(6));
            for _ in 0..50 {
                let p = pause(attempt);
                assert!(p >= ceiling / 2 && p < ceiling, "{attempt}: {p:?}");
            }
        }
        assert!(pause(20) < Duration::from_millis(256));
    }
}
