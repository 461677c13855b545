//! The fleet demo: makes a development PKI, starts the real issuer and
//! verifier on loopback ports, runs a fleet through the loop with faults
//! injected, and renders a per-chip table and a fleet summary.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chipward_certs::chain::ChainPolicy;
use chipward_certs::pki::DevPki;
use chipward_issuer::ledger::SqliteLedger;
use chipward_issuer::{IssuerService, IssuerSettings, SystemClock};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::result::Status;
use chipward_verifier::appraisal::{AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::revocation::RevocationCache;
use chipward_verifier::service::{self as verifier_service, VerifierService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::chip::{LicenseState, golden_measurements};
use crate::fleet::{self, FleetPlan, FleetReport, Vendor};

/// How often the demo verifier refreshes the revocation list.
const REVOCATION_REFRESH: Duration = Duration::from_millis(200);

/// Servers started in-process on loopback; dropped, they shut down.
pub struct Services {
    /// Issuer address.
    pub issuer: SocketAddr,
    /// Verifier address.
    pub verifier: SocketAddr,
    _stop: Vec<oneshot::Sender<()>>,
}

/// Creates a PKI under `dir` and starts issuer and verifier on
/// `127.0.0.1`, on ports the system picks.
pub async fn start_services(dir: &Path, plan: &FleetPlan) -> anyhow::Result<Services> {
    let pki_dir = dir.join("pki");
    DevPki::create(&pki_dir, &plan.model)?;
    let mut stop = Vec::new();

    let issuer_listener = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = issuer_listener.local_addr()?;
    let issuer_service = issuer_service(&pki_dir, &dir.join("ledger.sqlite"))?;
    spawn_server(&mut stop, |shutdown| {
        chipward_issuer::serve(issuer_service, issuer_listener, shutdown)
    });

    let verifier_listener = TcpListener::bind("127.0.0.1:0").await?;
    let verifier = verifier_listener.local_addr()?;
    let (appraiser, revocations, issuer_keys) = verifier_parts(&pki_dir, plan)?;
    let clock = verifier_service::system_clock();
    tokio::spawn(verifier_service::refresh_revocations(
        format!("http://{issuer}"),
        issuer_keys,
        revocations,
        REVOCATION_REFRESH,
        Arc::clone(&clock),
    ));
    let service = VerifierService::new(appraiser, clock);
    spawn_server(&mut stop, |shutdown| {
        verifier_service::serve(service, verifier_listener, 1 << 20, shutdown)
    });

    Ok(Services {
        issuer,
        verifier,
        _stop: stop,
    })
}

fn spawn_server<F, E>(
    stop: &mut Vec<oneshot::Sender<()>>,
    start: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
) where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let (tx, rx) = oneshot::channel::<()>();
    stop.push(tx);
    let server = start(Box::pin(async move {
        let _ = rx.await;
    }));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "server stopped");
        }
    });
}

fn issuer_service(pki_dir: &Path, db: &Path) -> anyhow::Result<IssuerService> {
    let pki = DevPki::load(pki_dir)?;
    let ledger = Arc::new(SqliteLedger::open(db)?);
    Ok(IssuerService::from_dev_pki(
        IssuerSettings::default(),
        &pki,
        ledger,
        Arc::new(SystemClock),
    )?)
}

fn verifier_parts(
    pki_dir: &Path,
    plan: &FleetPlan,
) -> anyhow::Result<(Arc<Appraiser>, Arc<RevocationCache>, TrustedKeys)> {
    let pki = DevPki::load(pki_dir)?;
    let issuer_keys = TrustedKeys::new().with(
        pki.issuer_token_key.key_id(),
        pki.issuer_token_key.public_key(),
    );

    // The vendor publishes reference values for the firmware it ships.
    let references = reference_values(plan);

    let revocations = Arc::new(RevocationCache::new(30_000));
    let appraiser = Appraiser::new(
        AppraisalSettings::default(),
        Roots::new(&[pki.root_cert_der().to_vec()], ChainPolicy::default())?,
        references,
        issuer_keys.clone(),
        Challenges::new(NonceKey::generate(), 60_000),
        Arc::clone(&revocations),
        pki.verifier_result_key,
    );
    Ok((Arc::new(appraiser), revocations, issuer_keys))
}

/// Starts the services in `dir` and runs `plan` against them over gRPC.
pub async fn run(dir: &Path, plan: &FleetPlan) -> anyhow::Result<FleetReport> {
    let services = start_services(dir, plan).await?;
    let issuer = format!("http://{}", services.issuer);
    let verifier = format!("http://{}", services.verifier);
    let report = run_against(&dir.join("pki"), &issuer, &verifier, plan).await?;
    drop(services);
    Ok(report)
}

/// Runs `plan` against an issuer and a verifier already serving at these
/// URLs, with chips certified by the provisioner CA in `pki_dir`.
pub async fn run_against(
    pki_dir: &Path,
    issuer_url: &str,
    verifier_url: &str,
    plan: &FleetPlan,
) -> anyhow::Result<FleetReport> {
    let pki = DevPki::load(pki_dir)?;
    let vendor = Vendor {
        chip_ca: &pki.chip_ca,
        issuer_keys: TrustedKeys::new().with(
            pki.issuer_token_key.key_id(),
            pki.issuer_token_key.public_key(),
        ),
        verifier_keys: TrustedKeys::new().with(
            pki.verifier_result_key.key_id(),
            pki.verifier_result_key.public_key(),
        ),
    };
    let issuer = Channel::from_shared(issuer_url.to_owned())?
        .connect()
        .await?;
    let verifier = Channel::from_shared(verifier_url.to_owned())?
        .connect()
        .await?;
    let now = || verifier_service::system_clock()() / 1000;
    fleet::run(plan, &vendor, issuer, verifier, now).await
}

/// The reference values a verifier needs for the fleet's firmware.
pub fn reference_values(plan: &FleetPlan) -> ReferenceValues {
    let mut references = ReferenceValues::default();
    let model = format!("{} Provisioner CA", plan.model);
    for block in golden_measurements(&plan.model, &plan.firmware) {
        references.insert(&model, block.index, vec![block.value]);
    }
    references
}

/// The per-chip table and the fleet summary, as printed by the demo.
pub fn render(report: &FleetReport, show_all: bool) -> String {
    let mut out = String::new();
    let header = [
        "#",
        "chip",
        "tenant",
        "site",
        "fault",
        "verdict",
        "failed claims",
        "renewed",
        "runs",
    ];
    let _ = writeln!(
        out,
        "{:>4}  {:<12}  {:<14}  {:<6}  {:<17}  {:<7}  {:<30}  {:<18}  {}",
        header[0],
        header[1],
        header[2],
        header[3],
        header[4],
        header[5],
        header[6],
        header[7],
        header[8]
    );
    for c in &report.chips {
        if !show_all && c.fault.is_none() && c.index >= 12 {
            continue;
        }
        let failed: Vec<&str> = c.failed.iter().map(|(claim, _)| claim.as_str()).collect();
        let renewed = match c.renewal {
            Ok(()) => "yes".to_owned(),
            Err(code) => format!("{code:?}"),
        };
        let runs = match c.license_state {
            LicenseState::Valid => "yes",
            LicenseState::Grace => "grace",
            LicenseState::Lapsed => "REFUSES",
        };
        let _ = writeln!(
            out,
            "{:>4}  {:<12}  {:<14}  {:<6}  {:<17}  {:<7}  {:<30}  {:<18}  {}",
            c.index,
            &c.chip_id[..12],
            c.tenant,
            c.site,
            c.fault.map(|f| f.label()).unwrap_or("-"),
            format!("{:?}", c.verdict).to_lowercase(),
            if failed.is_empty() {
                "-".to_owned()
            } else {
                failed.join(",")
            },
            renewed,
            runs
        );
    }
    if !show_all {
        let _ = writeln!(
            out,
            "      (healthy chips after #11 omitted; --all shows every chip)"
        );
    }

    let total = report.chips.len();
    let renewed = report.chips.iter().filter(|c| c.renewal.is_ok()).count();
    let _ = writeln!(
        out,
        "\nFleet summary: {total} chips in {:.1} s",
        report.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  compliant: {} of {total}; renewed: {renewed}",
        report.compliant()
    );
    for (claim, chips) in report.failures() {
        let list: Vec<String> = chips.iter().map(usize::to_string).collect();
        let _ = writeln!(
            out,
            "  failed {claim} ({}): chips {}",
            chips.len(),
            list.join(" ")
        );
    }
    let unknown = report
        .chips
        .iter()
        .filter(|c| c.verdict == Status::Unknown)
        .count();
    if unknown > 0 {
        let _ = writeln!(out, "  undecided: {unknown}");
    }
    out
}
