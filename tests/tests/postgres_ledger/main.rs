//! The PostgreSQL ledger against a real server that the tests start
//! themselves (`chipward_tests::postgres`), each test in a fresh database
//! of its own so that they run in parallel:
//!
//! - every check of the ledger conformance suite, one test each, named
//!   after the check, as the SQLite ledger runs them;
//! - what only this backend shows, with raw SQL where a state cannot be
//!   reached through the ledger ([`backend`]), and the migration of a
//!   database from before the audit log ([`migration`]);
//! - two ledgers on one database, as two issuer processes, racing from
//!   many threads: the invariants still hold ([`concurrency`]), and the
//!   audit log they both append to stays one dense, consistent log
//!   ([`audit_log`]);
//! - the issuer service over gRPC, which calls the ledger from
//!   `spawn_blocking` in a multi-thread runtime ([`service`]).

#![cfg(test)]

mod audit_log;
mod backend;
mod concurrency;
mod migration;
mod service;

use chipward_issuer::ledger::{PostgresLedger, PostgresOptions};
use chipward_tests::postgres::{self, Database};

/// A fresh database and a ledger on it, for the conformance suite.
fn fresh() -> (Database<'static>, PostgresLedger) {
    let db = postgres::database();
    let ledger = connect(&db);
    (db, ledger)
}

/// A ledger on `db` with default options.
fn connect(db: &Database<'_>) -> PostgresLedger {
    connect_with(db, &PostgresOptions::default())
}

/// A ledger on `db`.
fn connect_with(db: &Database<'_>, options: &PostgresOptions) -> PostgresLedger {
    let url = db.url().parse().unwrap();
    PostgresLedger::connect_with(&url, options).unwrap()
}

chipward_issuer::ledger_conformance_tests!(fresh);
