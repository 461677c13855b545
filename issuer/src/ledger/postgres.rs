//! The PostgreSQL ledger: for several issuer processes sharing one
//! database, with the same behaviour as the SQLite ledger.
//!
//! Each call borrows a connection from a small [`pool`] and runs as one
//! transaction through [`txn::run`]: writes SERIALIZABLE and retried a
//! bounded number of times when PostgreSQL reports a conflict with a
//! concurrent transaction, reads on one REPEATABLE READ snapshot. A commit
//! returns only once the server has flushed it to its WAL, and a statement
//! waits for another session's lock only up to a timeout. All SQL lives in
//! [`schema`], [`enrolment`], [`licenses`], [`revocations`], [`audit`] and
//! [`retention`]; values come from the service, already validated, and are
//! bound as parameters, never spliced into SQL text.
//!
//! Every write that changes something appends its audit record in the same
//! transaction. How the invariants hold across processes:
//! - the audit log stays one log, its indices dense and its subtree hashes
//!   over the right siblings: every call that may append takes the log's
//!   lock as its first statement and so runs alone, seeing every entry
//!   committed before it ([`audit`]);
//! - revocation versions grow by exactly one per revoking call: revocations
//!   log, and also lock their table first ([`revocations`]);
//! - a license is renewed at most once: renewals log, so a second renewal
//!   runs after the first and finds the license superseded; its row lock
//!   would also make the second fail to serialize ([`licenses::renew`]);
//! - a renewal racing a revocation of the same lineage runs before or after
//!   it, never beside it;
//! - token ids and chip ids are unique keys, and a racing insert is retried
//!   into the ledger's own error ([`txn`]).
//!
//! Limitation: holding the log's lock from the first statement makes every
//! logging write, from every process, run one at a time, each waiting for
//! the one before to flush its commit. Batching issuance through
//! `insert_licenses` (one commit for many licenses) is what keeps
//! throughput up; reads never wait for the lock.
//!
//! A new ledger method puts its SQL in one of these modules as a function
//! of `&mut Transaction` returning [`txn::Step`], and calls it through
//! `log` (when it may append to the audit log), `write` or `read`, which
//! bring the isolation, the log's lock and the retries. New tables go into
//! [`schema`] with a new version and a migration step.
//!
//! The driver is synchronous and runs a private tokio runtime inside each
//! connection. Call the ledger from a blocking thread (`spawn_blocking`),
//! as the service does, never from inside an async task: tokio panics when
//! one runtime is entered from another.
//!
//! Text columns cannot hold U+0000, which SQLite stores: such a value fails
//! with [`LedgerError::Backend`] (see [`licenses`]).

mod audit;
mod enrolment;
mod licenses;
mod pool;
mod retention;
mod revocations;
mod schema;
mod txn;
mod url;

use std::time::Duration;

use chipward_proto::revocation::RevokedLicense;
use chipward_proto::{ChipId, TokenId};
use postgres::Transaction;

pub use url::{PostgresUrl, PostgresUrlError};

use self::pool::Pool;
use self::txn::{Mode, Step};
use super::{
    AuditRecord, AuditSelection, ChipRecord, HostRecord, Ledger, LedgerError, LegalHold,
    LicenseFilter, LicenseRecord, ResultRecord, Revocation, StoredTreeHead,
};
use crate::host_enrolment::HostId;

/// A ledger in one PostgreSQL database.
pub struct PostgresLedger {
    pool: Pool,
    attempts: u32,
}

/// Connection and retry settings of a [`PostgresLedger`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections open at once, at least 1. Default 8.
    pub max_connections: usize,
    /// How long a call waits for a free connection before it fails as
    /// unavailable. Default 10 s.
    pub acquire_timeout: Duration,
    /// How long opening one connection may take, unless the URL sets
    /// `connect_timeout`. Default 5 s.
    pub connect_timeout: Duration,
    /// How many times a call is tried in all while PostgreSQL reports a
    /// conflict with a concurrent transaction, at least 1. Default 10.
    pub max_attempts: u32,
    /// How long one statement waits for a lock that another transaction
    /// holds before the call fails as unavailable. Default 5 s.
    pub lock_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 10,
            lock_timeout: Duration::from_secs(5),
        }
    }
}

impl PostgresLedger {
    /// The schema version this build writes and reads.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// Connects with default options; see [`Self::connect_with`].
    pub fn connect(url: &PostgresUrl) -> Result<Self, LedgerError> {
        Self::connect_with(url, &PostgresOptions::default())
    }

    /// Connects to the database at `url`, which must exist, and creates the
    /// schema or checks its version. An unreachable server, an unknown
    /// database or refused credentials fail with
    /// [`LedgerError::Unavailable`]; a newer schema with
    /// [`LedgerError::SchemaVersion`].
    pub fn connect_with(url: &PostgresUrl, options: &PostgresOptions) -> Result<Self, LedgerError> {
        let mut config = url.config().clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let ledger = Self {
            pool: Pool::new(
                config,
                options.max_connections,
                options.acquire_timeout,
                options.lock_timeout,
            ),
            attempts: options.max_attempts.max(1),
        };
        ledger.run(Mode::Schema, schema::prepare)?;
        Ok(ledger)
    }

    /// Runs a call that may append to the audit log: it holds the log's
    /// lock from its first statement to its commit.
    fn log<T>(&self, body: impl FnMut(&mut Transaction<'_>) -> Step<T>) -> Result<T, LedgerError> {
        self.run(Mode::Log, body)
    }

    /// Runs a call that writes but never logs.
    fn write<T>(
        &self,
        body: impl FnMut(&mut Transaction<'_>) -> Step<T>,
    ) -> Result<T, LedgerError> {
        self.run(Mode::Write, body)
    }

    /// Runs a call that only reads.
    fn read<T>(&self, body: impl FnMut(&mut Transaction<'_>) -> Step<T>) -> Result<T, LedgerError> {
        self.run(Mode::Read, body)
    }

    fn run<T>(
        &self,
        mode: Mode,
        body: impl FnMut(&mut Transaction<'_>) -> Step<T>,
    ) -> Result<T, LedgerError> {
        txn::run(&self.pool, self.attempts, mode, body)
    }
}

impl Ledger for PostgresLedger {
    fn enrol_chip(&self, chip: &ChipRecord, record: &AuditRecord) -> Result<bool, LedgerError> {
        self.log(|tx| {
            let new = enrolment::enrol_chip(tx, chip)?;
            if new {
                audit::append(tx, record)?;
            }
            Ok(new)
        })
    }

    fn chip(&self, chip_id: &ChipId) -> Result<Option<ChipRecord>, LedgerError> {
        self.read(|tx| enrolment::chip(tx, chip_id))
    }

    fn insert_license(
        &self,
        license: &LicenseRecord,
        record: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        self.log(|tx| {
            licenses::insert(tx, license)?;
            audit::append(tx, record)
        })
    }

    fn insert_licenses(
        &self,
        batch: &[(LicenseRecord, AuditRecord)],
    ) -> Result<Vec<Result<u64, LedgerError>>, LedgerError> {
        self.log(|tx| licenses::insert_batch(tx, batch))
    }

    fn license(&self, token_id: &TokenId) -> Result<Option<LicenseRecord>, LedgerError> {
        self.read(|tx| licenses::license(tx, token_id))
    }

    fn list_licenses(
        &self,
        filter: &LicenseFilter,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, LedgerError> {
        self.read(|tx| licenses::list(tx, filter, limit))
    }

    fn renew(
        &self,
        old: &TokenId,
        new: &LicenseRecord,
        record: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        self.log(|tx| {
            licenses::renew(tx, old, new)?;
            audit::append(tx, record)
        })
    }

    fn revoke(
        &self,
        token_id: &TokenId,
        reason: &str,
        at: i64,
        record: &AuditRecord,
    ) -> Result<Revocation, LedgerError> {
        self.log(|tx| {
            let done = revocations::revoke(tx, token_id, reason, at)?;
            if done.newly_revoked > 0 {
                audit::append(tx, record)?;
            }
            Ok(done)
        })
    }

    fn revocation_seq(&self) -> Result<u64, LedgerError> {
        self.read(revocations::seq)
    }

    fn revocations(&self) -> Result<(u64, Vec<RevokedLicense>), LedgerError> {
        self.read(revocations::list)
    }

    fn enrol_host(&self, host: &HostRecord, record: &AuditRecord) -> Result<bool, LedgerError> {
        self.log(|tx| {
            let new = enrolment::enrol_host(tx, host)?;
            if new {
                audit::append(tx, record)?;
            }
            Ok(new)
        })
    }

    fn host_keys(&self, host_id: &HostId) -> Result<Vec<HostRecord>, LedgerError> {
        self.read(|tx| enrolment::host_keys(tx, host_id))
    }

    fn append_audit(&self, records: &[AuditRecord]) -> Result<u64, LedgerError> {
        self.log(|tx| {
            let first = audit::size(tx)?;
            for r in records {
                audit::append(tx, r)?;
            }
            Ok(first)
        })
    }

    fn record_result(
        &self,
        result: &ResultRecord,
        record: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        self.log(|tx| {
            audit::insert_result(tx, result)?;
            audit::append(tx, record)
        })
    }

    fn results(
        &self,
        select: &AuditSelection,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, LedgerError> {
        self.read(|tx| audit::results(tx, select, limit))
    }

    fn audit_size(&self) -> Result<u64, LedgerError> {
        self.read(audit::size)
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, LedgerError> {
        self.read(|tx| audit::entries(tx, from, limit))
    }

    fn audit_select(
        &self,
        select: &AuditSelection,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        self.read(|tx| audit::select(tx, select, limit))
    }

    fn audit_node(&self, level: u32, index: u64) -> Result<[u8; 32], LedgerError> {
        self.read(|tx| audit::node(tx, level, index))
    }

    fn artefact(&self, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError> {
        self.read(|tx| audit::artefact(tx, sha256))
    }

    fn store_tree_head(&self, head: &StoredTreeHead) -> Result<(), LedgerError> {
        self.write(|tx| audit::store_head(tx, head))
    }

    fn tree_heads(&self, from_size: u64, limit: usize) -> Result<Vec<StoredTreeHead>, LedgerError> {
        self.read(|tx| audit::heads(tx, from_size, limit))
    }

    fn place_hold(&self, hold: &LegalHold, record: &AuditRecord) -> Result<i64, LedgerError> {
        self.log(|tx| {
            let id = retention::place_hold(tx, hold)?;
            audit::append(tx, record)?;
            Ok(id)
        })
    }

    fn lift_hold(&self, id: i64, at: i64, record: &AuditRecord) -> Result<(), LedgerError> {
        self.log(|tx| {
            if !retention::lift_hold(tx, id, at)? {
                return Err(LedgerError::NoSuchHold { id }.into());
            }
            audit::append(tx, record)?;
            Ok(())
        })
    }

    fn holds(&self) -> Result<Vec<LegalHold>, LedgerError> {
        self.read(retention::holds)
    }

    fn purge_lineage(
        &self,
        token_id: &TokenId,
        now: i64,
        retention_secs: i64,
        record: &AuditRecord,
    ) -> Result<usize, LedgerError> {
        self.log(|tx| {
            let purged = retention::purge_lineage(tx, token_id, now, retention_secs)?;
            audit::append(tx, record)?;
            Ok(purged)
        })
    }
}
