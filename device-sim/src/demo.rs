//! The fleet demo: makes a development PKI, starts the real issuer and
//! verifier on loopback ports, runs a fleet through the loop with faults
//! injected, and renders a per-chip table and a fleet summary.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chipward_certs::chain::{ChainPolicy, TrustAnchor};
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls as tls_pki;
use chipward_issuer::compliance::{CompliancePolicy, EXAMPLE_POLICY};
use chipward_issuer::ledger::SqliteLedger;
use chipward_issuer::{IssuerService, IssuerSettings};
use chipward_proto::access::Role;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{ListLicensesRequest, RevokeLicenseRequest};
use chipward_proto::metrics::{Render, serve_metrics};
use chipward_proto::result::Status;
use chipward_proto::tls::{self, DEFAULT_SERVER_NAME, TlsFiles};
use chipward_verifier::appraisal::{AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::location::Point;
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::rate_limits::{RateLimitSettings, VerifierRateLimits};
use chipward_verifier::revocation::RevocationCache;
use chipward_verifier::service::{self as verifier_service, VerifierService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::chip::{LicenseState, SimChip, golden_measurements};
use crate::clock::ScenarioClock;
use crate::fleet::{self, FleetPlan, FleetReport, Host, Links, SITES, SiteLandmarks, Vendor};
use crate::host_firmware::host_policy;
use crate::landmark::{self, enrolment};

/// How often the demo verifier refreshes the revocation list.
const REVOCATION_REFRESH: Duration = Duration::from_millis(200);

/// Servers started in-process on loopback; dropped, they shut down.
pub struct Services {
    /// Issuer address.
    pub issuer: SocketAddr,
    /// Verifier address.
    pub verifier: SocketAddr,
    /// Address of the issuer's Prometheus metrics endpoint (`GET /metrics`).
    pub issuer_metrics: SocketAddr,
    /// Address of the verifier's Prometheus metrics endpoint.
    pub verifier_metrics: SocketAddr,
    /// The TLS folder (`<dir>/pki/tls`): the CA, both servers' certificates
    /// and clients `admin`, `reviewer`, `auditor`, `landmark` and
    /// `operator` (of [`fleet::OPERATOR_TENANTS`]); more can be issued from
    /// its CA.
    pub tls_dir: PathBuf,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Services {
    /// A client configuration for the certificate `name` of the TLS folder.
    pub fn client_tls(&self, name: &str) -> anyhow::Result<ClientTlsConfig> {
        let files = TlsFiles::in_dir(&self.tls_dir, name);
        Ok(files.load()?.client(DEFAULT_SERVER_NAME))
    }

    /// A channel to the issuer, authenticated as the certificate `name`.
    pub async fn issuer_as(&self, name: &str) -> anyhow::Result<Channel> {
        let url = format!("https://{}", self.issuer);
        Ok(tls::connect_as(&self.tls_dir, name, &url).await?)
    }

    /// A channel to the verifier, authenticated as the certificate `name`.
    pub async fn verifier_as(&self, name: &str) -> anyhow::Result<Channel> {
        let url = format!("https://{}", self.verifier);
        Ok(tls::connect_as(&self.tls_dir, name, &url).await?)
    }

    /// The fleet's links: admin, operator and auditor.
    pub async fn links(&self) -> anyhow::Result<Links> {
        Links::connect(
            &self.tls_dir,
            &format!("https://{}", self.issuer),
            &format!("https://{}", self.verifier),
        )
        .await
    }
}

/// Creates a PKI and a TLS folder under `dir` and starts issuer and
/// verifier on `127.0.0.1`, on ports the system picks, both with mutual TLS
/// and telling time by `clock`. The issuer trusts `tpm_roots` (DER) for
/// host EK certificates.
pub async fn start_services(
    dir: &Path,
    plan: &FleetPlan,
    tpm_roots: &[Vec<u8>],
    landmarks: &SiteLandmarks,
    clock: &Arc<ScenarioClock>,
) -> anyhow::Result<Services> {
    let limits = RateLimitSettings::default();
    start_services_with(dir, plan, tpm_roots, landmarks, clock, &limits).await
}

/// [`start_services`] with the verifier's rate limits set to `limits`; the
/// load command lifts them, since it appraises each chip many times a
/// second from one client.
pub async fn start_services_with(
    dir: &Path,
    plan: &FleetPlan,
    tpm_roots: &[Vec<u8>],
    landmarks: &SiteLandmarks,
    clock: &Arc<ScenarioClock>,
    limits: &RateLimitSettings,
) -> anyhow::Result<Services> {
    let pki_dir = dir.join("pki");
    DevPki::create(&pki_dir, &plan.model)?;
    let tls_dir = pki_dir.join("tls");
    tls_pki::create_local_deployment(&tls_dir, &fleet::OPERATOR_TENANTS)?;
    let issuer_tls = TlsFiles::in_dir(&tls_dir, "issuer").load()?;
    let verifier_tls = TlsFiles::in_dir(&tls_dir, "verifier").load()?;
    let mut stop = Vec::new();

    let issuer_listener = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = issuer_listener.local_addr()?;
    let issuer_service = issuer_service(&pki_dir, &dir.join("ledger.sqlite"), tpm_roots, clock)?;
    let issuer_metrics = spawn_metrics(&mut stop, issuer_service.metrics_renderer()).await?;
    spawn_server(&mut stop, |shutdown| {
        chipward_issuer::serve(
            issuer_service,
            issuer_listener,
            issuer_tls.server(),
            shutdown,
        )
    });

    let verifier_listener = TcpListener::bind("127.0.0.1:0").await?;
    let verifier = verifier_listener.local_addr()?;
    let (appraiser, revocations, issuer_keys) = verifier_parts(&pki_dir, plan, landmarks)?;
    let clock = clock.for_verifier();
    tokio::spawn(verifier_service::refresh_revocations(
        format!("https://{issuer}"),
        verifier_tls.client(DEFAULT_SERVER_NAME),
        issuer_keys,
        revocations,
        REVOCATION_REFRESH,
        Arc::clone(&clock),
    ));
    let service =
        VerifierService::new(appraiser, clock).with_rate_limits(VerifierRateLimits::system(limits));
    let verifier_metrics = spawn_metrics(&mut stop, service.metrics().renderer()).await?;
    spawn_server(&mut stop, |shutdown| {
        verifier_service::serve(
            service,
            verifier_listener,
            verifier_tls.server(),
            1 << 20,
            shutdown,
        )
    });

    Ok(Services {
        issuer,
        verifier,
        issuer_metrics,
        verifier_metrics,
        tls_dir,
        _stop: stop,
    })
}

/// Serves `render` on a loopback port the system picks, until the
/// services are dropped; returns the port's address.
async fn spawn_metrics(
    stop: &mut Vec<oneshot::Sender<()>>,
    render: Render,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    stop.push(tx);
    tokio::spawn(serve_metrics(listener, render, async move {
        let _ = rx.await;
    }));
    Ok(addr)
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

fn issuer_service(
    pki_dir: &Path,
    db: &Path,
    tpm_roots: &[Vec<u8>],
    clock: &Arc<ScenarioClock>,
) -> anyhow::Result<IssuerService> {
    let pki = DevPki::load(pki_dir)?;
    let ledger = Arc::new(SqliteLedger::open(db)?);
    let anchors = tpm_roots
        .iter()
        .map(|der| TrustAnchor::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    let service = IssuerService::from_dev_pki(
        IssuerSettings::default(),
        &pki,
        ledger,
        Arc::clone(clock) as Arc<dyn chipward_issuer::Clock>,
    )?;
    let policy = CompliancePolicy::from_toml(EXAMPLE_POLICY)?;
    let digest = chipward_certs::keys::sha256(EXAMPLE_POLICY.as_bytes());
    Ok(service
        .with_tpm_roots(anchors)
        .with_compliance(policy, digest))
}

fn verifier_parts(
    pki_dir: &Path,
    plan: &FleetPlan,
    landmarks: &SiteLandmarks,
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
    )
    .with_host_policy(host_policy(&plan.host_firmware))
    .with_landmarks(enrolment(landmarks.values().flatten()));
    Ok((Arc::new(appraiser), revocations, issuer_keys))
}

/// Starts the services in `dir` (and swtpm hosts when it can) and runs
/// `plan` against them over gRPC.
pub async fn run(dir: &Path, plan: &FleetPlan) -> anyhow::Result<FleetReport> {
    let rig = HostRig::start(plan)?;
    let landmarks = Arc::new(if plan.landmarks {
        site_landmarks()?
    } else {
        SiteLandmarks::new()
    });
    let clock = Arc::new(ScenarioClock::movable());
    let services = start_services(dir, plan, &rig.tpm_roots, &landmarks, &clock).await?;
    let links = services.links().await?;
    let hosts = rig.enrol(links.operator.clone()).await?;
    let admin = links.admin.clone();
    let list = crate::records::load_demo_list(admin.clone()).await?;
    let mut report = run_with(&dir.join("pki"), &links, plan, &hosts, landmarks, clock).await?;
    report.hosts_note = rig.note.clone();
    // The auditor reads the whole log back and checks it offline, with one
    // leaked key's chip (or the first chip) as the bundle example.
    let bundle_chip = report
        .chips
        .iter()
        .find(|c| c.fault == Some(fleet::Fault::LeakedKey))
        .or(report.chips.first())
        .map(|c| c.chip_id.clone());
    let pki = DevPki::load(&dir.join("pki"))?;
    let keys = TrustedKeys::new().with(
        pki.issuer_token_key.key_id(),
        pki.issuer_token_key.public_key(),
    );
    let listed = SimChip::manufacture(&pki.chip_ca, &plan.model, 1_000_000, &plan.firmware)?;
    let refusal = crate::records::listed_tenant_asks(admin, &listed).await?;
    report.screening = vec![
        format!(
            "{list}: the fleet's {} tenants cleared",
            fleet::TENANTS.len()
        ),
        refusal,
    ];
    report.access = access_check(&services).await?;
    report.audit = Some(
        crate::records::audit_log(links.auditor.clone(), &keys, dir, bundle_chip.as_deref())
            .await?,
    );
    // Hosts close their TPM connections before their swtpms stop.
    drop(hosts);
    drop(services);
    drop(rig);
    Ok(report)
}

/// Shows roles enforced over mutual TLS: an operator certified for one
/// tenant lists that tenant's licenses and is refused another's, and an
/// auditor is refused a revocation. Neither refusal changes anything.
async fn access_check(services: &Services) -> anyhow::Result<Vec<String>> {
    let (own, other) = (fleet::TENANTS[0], fleet::TENANTS[1]);
    let ca = tls_pki::TlsCa::load(&services.tls_dir)?;
    let grant = tls_pki::Grant {
        tenants: vec![own.to_owned()],
        ..tls_pki::Grant::role(Role::Operator)
    };
    ca.issue_client("operator-one-tenant", &grant)?;
    let mut operator = IssuerClient::new(services.issuer_as("operator-one-tenant").await?);
    let list = |tenant: &str| ListLicensesRequest {
        chip_id: String::new(),
        tenant: tenant.to_owned(),
        limit: 0,
    };
    let mine = operator.list_licenses(list(own)).await?.into_inner();
    let theirs = operator.list_licenses(list(other)).await;
    let mut auditor = IssuerClient::new(services.issuer_as("auditor").await?);
    let revoke = RevokeLicenseRequest {
        token_id: mine
            .licenses
            .first()
            .map(|l| l.token_id.clone())
            .unwrap_or_default(),
        reason: "an auditor tries".into(),
    };
    let revoked = auditor.revoke_license(revoke).await;
    let outcome = |r: Result<(), tonic::Status>| match r {
        Ok(()) => "ALLOWED".to_owned(),
        Err(s) => format!("refused ({:?}: {})", s.code(), s.message()),
    };
    Ok(vec![
        "mutual TLS on every call; the vendor enrols and issues, the operator attests, renews and records, an auditor reads the log".into(),
        format!(
            "an operator certified for {own} lists its {} licenses; asking for {other}'s: {}",
            mine.licenses.len(),
            outcome(theirs.map(drop))
        ),
        format!(
            "an auditor revoking one of them: {}",
            outcome(revoked.map(drop))
        ),
    ])
}

/// Three landmarks 5 km from the centre of each demo site.
pub fn site_landmarks() -> anyhow::Result<SiteLandmarks> {
    let mut out = SiteLandmarks::new();
    for site in &SITES {
        let center = Point {
            latitude: site.latitude,
            longitude: site.longitude,
        };
        out.insert(site.id.to_owned(), landmark::ring(site.id, &center, 5.0)?);
    }
    Ok(out)
}

/// The demo's hosts: swtpm-backed when the TPM backend is built and swtpm
/// is installed, none otherwise, with a line saying which.
pub struct HostRig {
    /// TPM vendor roots (DER) the issuer must trust.
    pub tpm_roots: Vec<Vec<u8>>,
    /// What the demo says about its hosts.
    pub note: String,
    #[cfg(feature = "tpm")]
    hosts: Vec<(Arc<crate::host::SimHost>, Vec<Vec<u8>>)>,
    #[cfg(feature = "tpm")]
    _swtpms: Vec<crate::swtpm::Swtpm>,
}

impl HostRig {
    /// Starts `plan.hosts` swtpms and boots a host on each.
    #[cfg(feature = "tpm")]
    pub fn start(plan: &FleetPlan) -> anyhow::Result<Self> {
        use crate::fleet::TENANTS;
        use crate::host::SimHost;
        if plan.hosts == 0 {
            return Ok(Self::none("hosts: none asked for"));
        }
        if !crate::swtpm::available() {
            return Ok(Self::none(
                "hosts: none (swtpm is not installed; scripts/demo.sh installs it)",
            ));
        }
        let chips_in_hosts = (plan.hosts * fleet::CHIPS_PER_HOST).min(plan.chips);
        let mut rig = Self {
            tpm_roots: Vec::new(),
            note: format!(
                "hosts: {} with a TPM 2.0 (swtpm), holding chips 0 to {}; their quotes are appraised with their chips",
                plan.hosts,
                chips_in_hosts.saturating_sub(1)
            ),
            hosts: Vec::new(),
            _swtpms: Vec::new(),
        };
        for h in 0..plan.hosts {
            let swtpm = crate::swtpm::Swtpm::start()?;
            rig.tpm_roots.extend(pem_certs(&swtpm.root_ca_pem())?);
            let intermediates = pem_certs(&swtpm.issuer_ca_pem())?;
            let tenant = TENANTS[h % TENANTS.len()];
            let host = SimHost::boot(
                &format!("host-{h}"),
                &swtpm.tcti(),
                tenant,
                &plan.host_firmware,
            )?;
            rig.hosts.push((Arc::new(host), intermediates));
            rig._swtpms.push(swtpm);
        }
        Ok(rig)
    }

    /// Without the TPM backend there are no hosts.
    #[cfg(not(feature = "tpm"))]
    pub fn start(_plan: &FleetPlan) -> anyhow::Result<Self> {
        Ok(Self::none(
            "hosts: none (built without the tpm feature; scripts/demo.sh builds it)",
        ))
    }

    fn none(note: &str) -> Self {
        Self {
            tpm_roots: Vec::new(),
            note: note.to_owned(),
            #[cfg(feature = "tpm")]
            hosts: Vec::new(),
            #[cfg(feature = "tpm")]
            _swtpms: Vec::new(),
        }
    }

    /// Binds each host's AK through the issuer behind `issuer` (a channel
    /// as an operator or the vendor administrator).
    pub async fn enrol(&self, issuer: Channel) -> anyhow::Result<Vec<Arc<dyn Host>>> {
        #[cfg(feature = "tpm")]
        {
            let mut out: Vec<Arc<dyn Host>> = Vec::new();
            if self.hosts.is_empty() {
                return Ok(out);
            }
            let mut issuer = IssuerClient::new(issuer);
            for (host, intermediates) in &self.hosts {
                crate::host::enrol(host, &mut issuer, intermediates.clone()).await?;
                out.push(Arc::clone(host) as Arc<dyn Host>);
            }
            Ok(out)
        }
        #[cfg(not(feature = "tpm"))]
        {
            drop(issuer);
            Ok(Vec::new())
        }
    }
}

#[cfg(feature = "tpm")]
fn pem_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path)?;
    Ok(chipward_certs::pem::parse_certificates(&text)?)
}

/// Runs `plan` against an issuer and a verifier already serving at these
/// URLs, with chips certified by the provisioner CA in `pki_dir` and the
/// client certificates of `pki_dir/tls`, telling time by `clock` (which
/// must be the servers' own if it moves).
pub async fn run_against(
    pki_dir: &Path,
    issuer_url: &str,
    verifier_url: &str,
    plan: &FleetPlan,
    hosts: &[Arc<dyn Host>],
    landmarks: Arc<SiteLandmarks>,
    clock: Arc<ScenarioClock>,
) -> anyhow::Result<FleetReport> {
    let links = Links::connect(&pki_dir.join("tls"), issuer_url, verifier_url).await?;
    run_with(pki_dir, &links, plan, hosts, landmarks, clock).await
}

/// Runs `plan` over `links`, with chips certified by the provisioner CA in
/// `pki_dir`.
pub async fn run_with(
    pki_dir: &Path,
    links: &Links,
    plan: &FleetPlan,
    hosts: &[Arc<dyn Host>],
    landmarks: Arc<SiteLandmarks>,
    clock: Arc<ScenarioClock>,
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
    fleet::run(plan, &vendor, links, hosts, landmarks, clock).await
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

/// Opens a mutual-TLS channel to the server at `url` as the client `name`
/// of the TLS folder `tls_dir`. The load command and the scale run make
/// every channel they use here.
pub async fn connect(tls_dir: &Path, name: &str, url: &str) -> anyhow::Result<Channel> {
    Ok(tls::connect_as(tls_dir, name, url).await?)
}

/// The per-chip table and the fleet summary, as printed by the demo.
pub fn render(report: &FleetReport, show_all: bool) -> String {
    let mut out = String::new();
    let row = |out: &mut String, cells: [&str; 10]| {
        let [
            n,
            chip,
            host,
            tenant,
            site,
            fault,
            verdict,
            failed,
            renewed,
            runs,
        ] = cells;
        let _ = writeln!(
            out,
            "{n:>4}  {chip:<12}  {host:<6}  {tenant:<14}  {site:<6}  {fault:<17}  {verdict:<7}  {failed:<30}  {renewed:<18}  {runs}"
        );
    };
    let header = [
        "#",
        "chip",
        "host",
        "tenant",
        "site",
        "fault",
        "verdict",
        "failed claims",
        "renewed",
        "runs",
    ];
    row(&mut out, header);
    for c in &report.chips {
        if !show_all && c.fault.is_none() && c.index >= 12 {
            continue;
        }
        let failed: Vec<&str> = c.failed.iter().map(|(claim, _)| claim.as_str()).collect();
        let failed = if failed.is_empty() {
            "-".to_owned()
        } else {
            failed.join(",")
        };
        let renewed = match c.renewal {
            Ok(()) => "yes".to_owned(),
            Err(code) => format!("{code:?}"),
        };
        let runs = match c.license_state {
            LicenseState::Valid => "yes",
            LicenseState::Grace => "grace",
            LicenseState::Lapsed => "REFUSES",
        };
        let verdict = format!("{:?}", c.verdict).to_lowercase();
        let index = c.index.to_string();
        row(
            &mut out,
            [
                &index,
                &c.chip_id[..12],
                c.host.as_deref().unwrap_or("-"),
                &c.tenant,
                &c.site,
                c.fault.map(|f| f.label()).unwrap_or("-"),
                &verdict,
                &failed,
                &renewed,
                runs,
            ],
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
    let _ = writeln!(out, "  {}", report.hosts_note);
    let hosted: Vec<&fleet::ChipOutcome> =
        report.chips.iter().filter(|c| c.host.is_some()).collect();
    if !hosted.is_empty() {
        let host_failures = hosted
            .iter()
            .filter(|c| c.failed.iter().any(|(claim, _)| claim.starts_with("host.")))
            .count();
        let _ = writeln!(
            out,
            "  host quotes: {} appraised with their chips, {host_failures} with a failed host claim",
            hosted.len()
        );
    }
    let located: Vec<&(Status, String)> = report
        .chips
        .iter()
        .filter_map(|c| c.location.as_ref())
        .collect();
    if !located.is_empty() {
        let count = |s: Status| located.iter().filter(|(st, _)| *st == s).count();
        // The certified radius: the largest distance from the site the
        // verifier's signed bound allows, for chips whose location passed.
        let mut radii: Vec<f64> = report.chips.iter().filter_map(|c| c.certified_km).collect();
        radii.sort_by(f64::total_cmp);
        let median = radii
            .get(radii.len() / 2)
            .map(|r| format!("{r:.1} km"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  location by landmarks: {} certified inside their site (median certified radius {median}), \
             {} undecided, {} outside",
            count(Status::Pass),
            count(Status::Unknown),
            count(Status::Fail)
        );
    }
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
    if let Some(integrity) = &report.integrity {
        render_integrity(&mut out, integrity);
    }
    for (i, line) in report.screening.iter().enumerate() {
        let head = if i == 0 { "screening:" } else { "          " };
        let _ = writeln!(out, "  {head} {line}");
    }
    for (i, line) in report.access.iter().enumerate() {
        let head = if i == 0 { "access:" } else { "       " };
        let _ = writeln!(out, "  {head} {line}");
    }
    if let Some(audit) = &report.audit {
        render_audit(&mut out, audit);
    }
    let undecided: Vec<String> = report
        .chips
        .iter()
        .filter(|c| c.verdict == Status::Unknown)
        .map(|c| c.index.to_string())
        .collect();
    if !undecided.is_empty() {
        let _ = writeln!(
            out,
            "  not certified, undecided ({}): chips {}",
            undecided.len(),
            undecided.join(" ")
        );
    }
    out
}

fn render_integrity(out: &mut String, integrity: &fleet::Integrity) {
    let hours = fleet::REAPPEAR_AFTER_SECS / 3_600;
    let _ = writeln!(
        out,
        "  fleet integrity over {} rounds ({hours} h of scenario time): {} appraisals, {} by genuine chips",
        integrity.rounds, integrity.appraisals, integrity.sightings
    );
    for kind in [
        "two-places",
        "impossible-travel",
        "reappeared",
        "unlicensed-at-site",
    ] {
        let chips: Vec<String> = integrity
            .chips_in(kind)
            .iter()
            .map(usize::to_string)
            .collect();
        let example = integrity
            .findings
            .iter()
            .find(|f| f.kind() == kind)
            .map(|f| format!("; e.g. {f}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    {kind} ({}): chips {}{example}",
            chips.len(),
            if chips.is_empty() {
                "-".to_owned()
            } else {
                chips.join(" ")
            }
        );
    }
}

fn render_audit(out: &mut String, audit: &crate::records::AuditSummary) {
    let kinds: Vec<String> = audit
        .kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  audit log: {} entries ({}), root {}",
        audit.entries,
        kinds.join(", "),
        &audit.root[..16]
    );
    let _ = writeln!(
        out,
        "    exported to {} and checked offline with the issuer's public key: holds",
        audit.export.display()
    );
    let _ = writeln!(out, "    a copy with one entry altered: {}", audit.tampered);
    if let Some((chip, entries, artefacts)) = &audit.bundle {
        let _ = writeln!(
            out,
            "    evidence bundle of chip {}: {entries} entries with inclusion proofs, {artefacts} licenses and results, checked",
            &chip[..12]
        );
    }
}
