//! The PostgreSQL ledger: for several issuer processes sharing one
//! database, with the same behaviour as the SQLite ledger.
//!
//! Each call borrows a connection from a small [`pool`] and runs as one
//! transaction through [`txn::run`]: writes SERIALIZABLE and retried a
//! bounded number of times when PostgreSQL reports a conflict with a
//! concurrent transaction, reads on one REPEATABLE READ snapshot. A commit
//! returns only once the server has flushed it to its WAL, and a statement
//! waits for another session's lock only up to a timeout. All SQL lives in
//! [`schema`], [`enrolment`], [`licenses`] and [`revocations`]; values come
//! from the service, already validated, and are bound as parameters, never
//! spliced into SQL text.
//!
//! How the invariants hold across processes:
//! - revocation versions grow by exactly one per revoking call: revocations
//!   lock their table first and so run one at a time ([`revocations`]);
//! - a license is renewed at most once: renewal locks the old license's row,
//!   and a second renewal then fails to serialize, is retried, and finds
//!   the license superseded ([`licenses::renew`]);
//! - a renewal racing a revocation of the same lineage writes the same row,
//!   so one of them is retried and sees the other's result;
//! - token ids and chip ids are unique keys, and a racing insert is retried
//!   into the ledger's own error ([`txn`]).
//!
//! A new ledger method puts its SQL in one of these modules as a function
//! of `&mut Transaction` returning [`txn::Step`], and calls it through
//! `write` or `read`, which bring the isolation and the retries. New tables
//! go into [`schema`] with a new version and a migration step.
//!
//! The driver is synchronous and runs a private tokio runtime inside each
//! connection. Call the ledger from a blocking thread (`spawn_blocking`),
//! as the service does, never from inside an async task: tokio panics when
//! one runtime is entered from another.
//!
//! Text columns cannot hold U+0000, which SQLite stores: such a value fails
//! with [`LedgerError::Backend`] (see [`licenses`]).

mod enrolment;
mod licenses;
mod pool;
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

    /// Runs a call that writes.
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
    // Limitation: schema version 1 has no audit log, so every call that
    // must append to it is refused instead of writing unlogged changes.

    fn enrol_chip(&self, _chip: &ChipRecord, _audit: &AuditRecord) -> Result<bool, LedgerError> {
        Err(no_audit_log())
    }

    fn chip(&self, chip_id: &ChipId) -> Result<Option<ChipRecord>, LedgerError> {
        self.read(|tx| enrolment::chip(tx, chip_id))
    }

    fn insert_license(
        &self,
        _license: &LicenseRecord,
        _audit: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        Err(no_audit_log())
    }

    fn insert_licenses(
        &self,
        _batch: &[(LicenseRecord, AuditRecord)],
    ) -> Result<Vec<Result<u64, LedgerError>>, LedgerError> {
        Err(no_audit_log())
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
        _old: &TokenId,
        _new: &LicenseRecord,
        _audit: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        Err(no_audit_log())
    }

    fn revoke(
        &self,
        _token_id: &TokenId,
        _reason: &str,
        _at: i64,
        _audit: &AuditRecord,
    ) -> Result<Revocation, LedgerError> {
        Err(no_audit_log())
    }

    fn revocation_seq(&self) -> Result<u64, LedgerError> {
        self.read(revocations::seq)
    }

    fn revocations(&self) -> Result<(u64, Vec<RevokedLicense>), LedgerError> {
        self.read(revocations::list)
    }

    fn enrol_host(&self, _host: &HostRecord, _audit: &AuditRecord) -> Result<bool, LedgerError> {
        Err(no_audit_log())
    }

    fn host_keys(&self, host_id: &HostId) -> Result<Vec<HostRecord>, LedgerError> {
        self.read(|tx| enrolment::host_keys(tx, host_id))
    }

    fn append_audit(&self, _records: &[AuditRecord]) -> Result<u64, LedgerError> {
        Err(no_audit_log())
    }

    fn record_result(
        &self,
        _result: &ResultRecord,
        _audit: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        Err(no_audit_log())
    }

    fn results(
        &self,
        _select: &AuditSelection,
        _limit: usize,
    ) -> Result<Vec<ResultRecord>, LedgerError> {
        Err(no_audit_log())
    }

    fn audit_size(&self) -> Result<u64, LedgerError> {
        Err(no_audit_log())
    }

    fn audit_entries(&self, _from: u64, _limit: usize) -> Result<Vec<Vec<u8>>, LedgerError> {
        Err(no_audit_log())
    }

    fn audit_select(
        &self,
        _select: &AuditSelection,
        _limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        Err(no_audit_log())
    }

    fn audit_node(&self, _level: u32, _index: u64) -> Result<[u8; 32], LedgerError> {
        Err(no_audit_log())
    }

    fn artefact(&self, _sha256: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError> {
        Err(no_audit_log())
    }

    fn store_tree_head(&self, _head: &StoredTreeHead) -> Result<(), LedgerError> {
        Err(no_audit_log())
    }

    fn tree_heads(
        &self,
        _from_size: u64,
        _limit: usize,
    ) -> Result<Vec<StoredTreeHead>, LedgerError> {
        Err(no_audit_log())
    }

    fn place_hold(&self, _hold: &LegalHold, _audit: &AuditRecord) -> Result<i64, LedgerError> {
        Err(no_audit_log())
    }

    fn lift_hold(&self, _id: i64, _at: i64, _audit: &AuditRecord) -> Result<(), LedgerError> {
        Err(no_audit_log())
    }

    fn holds(&self) -> Result<Vec<LegalHold>, LedgerError> {
        Err(no_audit_log())
    }

    fn purge_lineage(
        &self,
        _token_id: &TokenId,
        _now: i64,
        _retention_secs: i64,
        _audit: &AuditRecord,
    ) -> Result<usize, LedgerError> {
        Err(no_audit_log())
    }
}

/// Schema version 1 keeps no audit log.
#[derive(Debug, thiserror::Error)]
#[error("the postgres ledger has no audit log yet")]
struct NoAuditLog;

fn no_audit_log() -> LedgerError {
    LedgerError::Backend(Box::new(NoAuditLog))
}
