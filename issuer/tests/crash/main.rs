//! Crash safety of the issuer, on SQLite (a real file) and on PostgreSQL (a
//! throwaway server of the test's own): the real `chipward-issuer` process,
//! with its own development PKI and configuration file, is SIGKILLed in the
//! middle of a burst of concurrent issuances and renewals, restarted on the
//! same ledger, and then must show everything it acknowledged and nothing
//! half-written. It is frozen (SIGSTOP) a moment before the kill, so that
//! every worker has a call the kill certainly cuts; for the ledger, the
//! crash happens at the freeze.
//!
//! What is checked after the restart ([`checks`]):
//! 1. every acknowledged license, issued or renewed, is served back by
//!    `GetLicense` and `ListLicenses` exactly as it was acknowledged, its
//!    state aside; a license is superseded if and only if exactly one
//!    license renewed it, and active otherwise;
//! 2. the log's signed head verifies, `GetEntries` returns exactly as many
//!    entries as the head's size, and the whole log, exported and checked
//!    offline (`chipward_proto::audit::check`), rebuilds the signed root and
//!    proves every tree head handed out before the kill a prefix of it;
//!    consistency proofs from each of those heads, and inclusion proofs of
//!    every entry under the new head and of every earlier entry under the
//!    last head before the kill, verify; each of those heads covers the
//!    entry of every license acknowledged before it was asked for;
//! 3. each license has exactly one issued or renewed entry carrying its
//!    token's digest, each entry names a license, chip and artefacts that
//!    are present (per-chip evidence bundles checked offline), and no other
//!    kind of entry was written; the database holds no rows the service does
//!    not show (licenses, entries, and exactly the perfect subtree nodes a
//!    log of that size has);
//! 4. the restarted issuer still issues and renews, and its log grows by
//!    exactly those entries, consistently with the head before.
//!
//! Where this test lives: in the issuer's own tests, because cargo builds
//! the package's binaries before its integration tests and names their
//! paths (`CARGO_BIN_EXE_chipward-issuer`), while the throwaway PostgreSQL
//! server comes from `chipward-tests`, already a dev-dependency here. From
//! the `tests` crate the binary would have to be found by guessing at
//! cargo's target folder layout, and might be stale.
//!
//! Every gRPC channel of the checks is made by [`channel_as`], over mutual
//! TLS with a client of [`tls_dir`]; the process helper checks readiness
//! as its administrator.
//!
//! Limitation: the issuer process dies, not the machine. A kill loses no
//! data that reached the operating system, so this shows atomicity and
//! recovery on restart, not that commits were flushed to the disk.

#![cfg(test)]

mod burst;
mod checks;
mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chipward_certs::keys::{P384Key, spki_sha256};
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::EnrolChipRequest;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::tls::{DEFAULT_SERVER_NAME, TlsFiles};
use tonic::transport::Channel;

use self::burst::Burst;
use self::process::Issuer;

/// The chip model of the development PKI.
const MODEL: &str = "CW-100";
/// Chips, one concurrent worker each.
const CHIPS: u64 = 12;
/// Acknowledgements to wait for before the kill.
const KILL_AFTER_ACKS: usize = 150;
/// Upper bound of any single call.
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Every gRPC channel of this test. Lazy: the first call connects, and a
/// call on a channel whose server is gone fails instead of hanging.
async fn channel(addr: SocketAddr) -> Channel {
    channel_as(addr, "admin")
}

/// A channel to the issuer at `addr` as the operator, who renews.
fn operator_channel(addr: SocketAddr) -> Channel {
    channel_as(addr, "operator")
}

fn channel_as(addr: SocketAddr, name: &str) -> Channel {
    let tls = TlsFiles::in_dir(tls_dir(), name)
        .load()
        .expect("the shared tls folder holds every client")
        .client(DEFAULT_SERVER_NAME);
    chipward_proto::tls::endpoint(&format!("https://{addr}"), &tls)
        .expect("a loopback URL is a valid endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_LIMIT)
        .connect_lazy()
}

/// One TLS folder for every issuer this test binary starts (both backends):
/// the issuer's certificate, an administrator and an operator of the
/// tenant the burst licenses.
fn tls_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, tls) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        create_local_deployment(&tls, &["acme-ai"]).unwrap();
        (dir, tls)
    });
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ledger.sqlite");
    let ledger = Ledger::Sqlite(file.clone());
    crash_and_recover(dir.path(), &file.display().to_string(), &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = chipward_tests::postgres::database();
    let ledger = Ledger::Postgres(&db);
    crash_and_recover(dir.path(), &db.url(), &ledger).await;
}

/// The database under the issuer, for counting rows behind its back.
enum Ledger<'a> {
    Sqlite(PathBuf),
    Postgres(&'a chipward_tests::postgres::Database<'static>),
}

/// Starts the issuer on `database`, kills it mid-burst, restarts it on the
/// same database and checks what it serves.
async fn crash_and_recover(dir: &Path, database: &str, ledger: &Ledger<'_>) {
    let started = Instant::now();
    let pki = Arc::new(DevPki::create(&dir.join("pki"), MODEL).unwrap());
    let config = process::write_config(dir, database);

    // 1. The first life: enrol the chips, run the burst, freeze, SIGKILL.
    let mut issuer = Issuer::start(&config, &dir.join("issuer-1")).await;
    let chips = enrol_chips(issuer.addr(), &pki).await;
    let burst = Burst::start(issuer.addr(), &chips, Arc::clone(&pki)).await;
    burst.wait_for_acks(KILL_AFTER_ACKS).await;
    issuer.freeze();
    let frozen_at = Instant::now();
    burst.wait_for_blocked_calls(CHIPS as usize).await;
    burst.mark_killed();
    issuer.sigkill();
    let record = burst.finish().await;
    let first_life = started.elapsed();

    // 2. The second life, on the same configuration and ledger.
    let issuer = Issuer::start(&config, &dir.join("issuer-2")).await;
    let restarted = frozen_at.elapsed();
    let checking = Instant::now();
    let keys = token_keys(&pki);
    let mut check = checks::Checker::new(issuer.addr(), keys, &chips, &record).await;
    let served = check.everything(ledger).await;
    check.keeps_working(&pki, &served).await;
    let checked = checking.elapsed();

    eprintln!(
        "{database_kind}: {issued} issued and {renewed} renewed acknowledged, {cut} calls cut \
         by the kill ({in_flight} in flight), {heads} tree heads before it; log of {size} \
         entries, {licenses} licenses after restart; set-up, burst and kill {first_life:?}, \
         freeze to serving again {restarted:?}, checks {checked:?}, total {total:?}",
        database_kind = match ledger {
            Ledger::Sqlite(_) => "sqlite",
            Ledger::Postgres(_) => "postgres",
        },
        issued = record.issued().count(),
        renewed = record.renewed().count(),
        cut = record.cut,
        in_flight = record.in_flight_at_kill,
        heads = record.heads.len(),
        size = served.size,
        licenses = served.licenses,
        total = started.elapsed(),
    );
}

/// A chip enrolled with the issuer: its id, lowercase hex.
#[derive(Clone, Debug)]
struct Chip {
    id: String,
}

/// Enrols [`CHIPS`] chips, each with a fresh identity key.
async fn enrol_chips(addr: SocketAddr, pki: &DevPki) -> Vec<Chip> {
    let mut client = IssuerClient::new(channel(addr).await);
    let mut chips = Vec::new();
    for serial in 1..=CHIPS {
        let key = P384Key::generate().unwrap();
        let spki = key.public_key_spki_der();
        let cert = pki
            .chip_ca
            .issue_device_identity(&spki, MODEL, serial)
            .unwrap();
        let cert_chain = vec![cert, pki.chip_ca.cert_der.clone()];
        let enrolled = client
            .enrol_chip(EnrolChipRequest { cert_chain })
            .await
            .unwrap()
            .into_inner();
        assert!(enrolled.newly_enrolled);
        let id = hex::encode(spki_sha256(&spki));
        assert_eq!(enrolled.chip_id, id);
        chips.push(Chip { id });
    }
    chips
}

/// The keys an auditor trusts: the issuer's token key.
fn token_keys(pki: &DevPki) -> TrustedKeys {
    let key = &pki.issuer_token_key;
    TrustedKeys::new().with(key.key_id(), key.public_key())
}
