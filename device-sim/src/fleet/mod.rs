//! A fleet of simulated chips driven through the whole loop against real
//! issuer and verifier servers over gRPC: enrol, license, challenge, prove,
//! appraise, renew or lapse. Faults are injected on purpose, and the run
//! records, chip by chip, which claims failed, so a test can check that the
//! failures are exactly the faults.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chipward_certs::pki::CertifiedKey;
use chipward_proto::ChipId;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{
    AppraiseRequest, ChallengeRequest, EnrolChipRequest, HostEvidence, InfoRequest,
    IssueLicenseRequest, Party, RecordResultRequest, RenewLicenseRequest, RevokeLicenseRequest,
    Site,
};
use chipward_proto::nonce::evidence_nonce;
use chipward_proto::result::{self, Status};
use chipward_proto::tls;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use chipward_verifier::location::Point;

use crate::chip::{LicenseState, SimChip};
use crate::clock::ScenarioClock;
use crate::geography::{Rng, destination};
use crate::landmark::{SimLandmark, metro_network};

/// A fault the simulator injects into one chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A measured firmware component differs from the approved image.
    TamperedFirmware,
    /// The chip serves a tenant its license does not name.
    WrongTenant,
    /// The chip claims a site its license does not permit.
    MovedSite,
    /// The chip's license expired before the appraisal.
    ExpiredLicense,
    /// The vendor revoked the chip's license.
    RevokedLicense,
    /// The chip resends evidence it already used.
    ReplayedEvidence,
    /// A device with another chip's certificates but not its key.
    ClonedIdentity,
    /// A chip moved far abroad, claiming its licensed site through a relay
    /// there that forwards each landmark's challenge.
    RelayedChip,
    /// A chip moved to another of the fleet's sites, still claiming its
    /// licensed one; the landmarks where it now sits measure it.
    MovedAbroad,
    /// A second device with a copy of another chip's key, licensed for that
    /// chip at another site: each appraisal passes, the fleet view does not.
    LeakedKey,
    /// A chip that passes, then stops attesting and reappears at another
    /// site hours later.
    Reappearing,
}

impl Fault {
    /// Every fault, in table order.
    pub const ALL: [Self; 11] = [
        Self::TamperedFirmware,
        Self::WrongTenant,
        Self::MovedSite,
        Self::ExpiredLicense,
        Self::RevokedLicense,
        Self::ReplayedEvidence,
        Self::ClonedIdentity,
        Self::RelayedChip,
        Self::MovedAbroad,
        Self::LeakedKey,
        Self::Reappearing,
    ];

    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::TamperedFirmware => "tampered-firmware",
            Self::WrongTenant => "wrong-tenant",
            Self::MovedSite => "moved-site",
            Self::ExpiredLicense => "expired-license",
            Self::RevokedLicense => "revoked-license",
            Self::ReplayedEvidence => "replayed-evidence",
            Self::ClonedIdentity => "cloned-identity",
            Self::RelayedChip => "relayed-chip",
            Self::MovedAbroad => "moved-abroad",
            Self::LeakedKey => "leaked-key",
            Self::Reappearing => "reappearing",
        }
    }

    /// The one claim that catches this fault in the chip's first
    /// appraisal, and how: a relayed chip's location the landmarks can no
    /// longer certify (unknown), since physics bounds distance, not place;
    /// the other faults fail their claim. `None` for the faults only the
    /// fleet view catches ([`Self::fleet_pattern`]).
    pub fn caught_by(self) -> Option<(&'static str, Status)> {
        use chipward_verifier::claims as c;
        let failed = match self {
            Self::TamperedFirmware => c::FIRMWARE_MEASUREMENTS,
            Self::WrongTenant => c::TENANT,
            Self::MovedSite => c::SITE,
            Self::ExpiredLicense => c::LICENSE_VALIDITY,
            Self::RevokedLicense => c::LICENSE_REVOCATION,
            Self::ReplayedEvidence => c::EVIDENCE_FRESHNESS,
            Self::ClonedIdentity => c::EVIDENCE_SIGNATURE,
            Self::MovedAbroad => c::LOCATION,
            Self::RelayedChip => return Some((c::LOCATION, Status::Unknown)),
            Self::LeakedKey | Self::Reappearing => return None,
        };
        Some((failed, Status::Fail))
    }

    /// The fleet-integrity pattern ([`chipward_verifier::fleet::Finding`]
    /// kind) that catches this fault across appraisals, for the faults no
    /// single appraisal catches.
    pub fn fleet_pattern(self) -> Option<&'static str> {
        match self {
            Self::LeakedKey => Some("two-places"),
            Self::Reappearing => Some("reappeared"),
            _ => None,
        }
    }
}

/// A host that chips sit in, whose TPM quotes beside their evidence over a
/// nonce derived from each chip's.
pub trait Host: Send + Sync {
    /// Name for tables.
    fn name(&self) -> &str;
    /// The host's quote for a chip whose evidence nonce is `chip_nonce`.
    fn evidence(&self, chip_nonce: &[u8; 32]) -> anyhow::Result<HostEvidence>;
    /// Plugs chips in: the host measures their ids into its device PCR.
    fn attach(&self, chips: &[ChipId]) -> anyhow::Result<()>;
}

/// Chips per host: host `h` holds chips `5h` to `5h + 4`, which share a
/// tenant (see [`FleetPlan::placement`]).
pub const CHIPS_PER_HOST: usize = 5;

/// A site chips are licensed for.
#[derive(Clone, Debug)]
pub struct SiteSpec {
    /// Site id.
    pub id: &'static str,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

/// The default sites: real data-center regions.
pub const SITES: [SiteSpec; 4] = [
    SiteSpec {
        id: "fra-1",
        latitude: 50.1109,
        longitude: 8.6821,
    },
    SiteSpec {
        id: "iad-1",
        latitude: 39.0438,
        longitude: -77.4874,
    },
    SiteSpec {
        id: "sin-1",
        latitude: 1.3521,
        longitude: 103.8198,
    },
    SiteSpec {
        id: "dub-1",
        latitude: 53.3498,
        longitude: -6.2603,
    },
];

/// The default tenants.
pub const TENANTS: [&str; 5] = [
    "acme-ai",
    "borealis-labs",
    "cobalt-cloud",
    "delta-research",
    "ember-systems",
];

/// A tenant the operator also serves but no chip is licensed for: a chip
/// that claims it (the wrong-tenant fault) fails its `tenant` claim.
pub const UNLICENSED_TENANT: &str = "unlicensed-tenant";

/// Every tenant the demo's operator acts for: its client certificate names
/// them all.
pub const OPERATOR_TENANTS: [&str; 6] = [
    TENANTS[0],
    TENANTS[1],
    TENANTS[2],
    TENANTS[3],
    TENANTS[4],
    UNLICENSED_TENANT,
];

/// The legal name, address and country of a default tenant, as license
/// requests give them for screening. All invented.
pub fn legal_party(tenant: &str) -> Party {
    let (name, address, country) = match tenant {
        "acme-ai" => ("Acme AI Inc.", "1 Example Way, San Francisco", "US"),
        "borealis-labs" => ("Borealis Labs Oy", "Esimerkkikatu 2, Helsinki", "FI"),
        "cobalt-cloud" => (
            "Cobalt Cloud GmbH",
            "Beispielstrasse 3, Frankfurt am Main",
            "DE",
        ),
        "delta-research" => ("Delta Research Ltd", "4 Sample Quay, Dublin", "IE"),
        "ember-systems" => ("Ember Systems Pte. Ltd.", "5 Example Road, Singapore", "SG"),
        other => (other, "", ""),
    };
    Party {
        name: name.into(),
        address: address.into(),
        country: country.into(),
    }
}

/// How a fleet run is laid out.
#[derive(Clone, Debug)]
pub struct FleetPlan {
    /// Number of chips, clones included.
    pub chips: usize,
    /// Whether to inject faults (about one chip in six).
    pub faults: bool,
    /// Product line of every chip.
    pub model: String,
    /// Firmware version of every chip.
    pub firmware: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Grace period chips allow past license expiry, seconds.
    pub grace_secs: i64,
    /// Hosts with a swtpm to start, each holding five chips; used only
    /// when the TPM backend is built and swtpm is installed.
    pub hosts: usize,
    /// Firmware version of every host.
    pub host_firmware: String,
    /// Whether landmarks measure every chip and the verifier judges its
    /// location.
    pub landmarks: bool,
    /// Whether to attest again hours later (when the clock can move) and
    /// analyse the fleet's integrity across all the appraisals.
    pub watch: bool,
}

impl Default for FleetPlan {
    fn default() -> Self {
        Self {
            chips: 300,
            faults: true,
            model: "CW-100".into(),
            firmware: "1.4.2".into(),
            concurrency: 32,
            grace_secs: 3_600,
            hosts: 2,
            host_firmware: "uefi-2.9".into(),
            landmarks: true,
            watch: true,
        }
    }
}

impl FleetPlan {
    /// The fault injected into chip `index`: in each block of five chips per
    /// fault kind, every fifth chip starting at the fourth carries one kind
    /// in turn (every kind once per block of 55).
    pub fn fault_for(&self, index: usize) -> Option<Fault> {
        let slot = index % (5 * Fault::ALL.len());
        (self.faults && slot % 5 == 3)
            .then(|| Fault::ALL.get(slot / 5).copied())
            .flatten()
    }

    /// Tenant and site the license of chip `index` names.
    pub fn placement(index: usize) -> (&'static str, &'static SiteSpec) {
        (
            TENANTS[(index / 5) % TENANTS.len()],
            &SITES[index % SITES.len()],
        )
    }
}

/// What happened to one chip.
#[derive(Clone, Debug)]
pub struct ChipOutcome {
    /// Position in the fleet.
    pub index: usize,
    /// Chip id, lowercase hex.
    pub chip_id: String,
    /// Licensed tenant.
    pub tenant: String,
    /// Licensed site.
    pub site: String,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The host the chip sits in, if it has a TPM.
    pub host: Option<String>,
    /// The location claim, when landmarks measured the chip: its status
    /// and reason.
    pub location: Option<(Status, String)>,
    /// The largest distance from the site the landmarks certified, km,
    /// when the location claim passed.
    pub certified_km: Option<f64>,
    /// The verifier's verdict.
    pub verdict: Status,
    /// Claims that failed, with their codes.
    pub failed: Vec<(String, String)>,
    /// Claims left unknown.
    pub unknown: Vec<String>,
    /// Whether renewal was granted; the refusal's gRPC code otherwise.
    pub renewal: Result<(), tonic::Code>,
    /// The chip's own view of its license after the run.
    pub license_state: LicenseState,
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct FleetReport {
    /// One entry per chip, in fleet order.
    pub chips: Vec<ChipOutcome>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// What the run had for hosts, in words.
    pub hosts_note: String,
    /// The later rounds and what the fleet view found, when the run
    /// watched the fleet.
    pub integrity: Option<Integrity>,
    /// What an auditor found in the issuer's log afterwards, when the run
    /// checked it.
    pub audit: Option<crate::records::AuditSummary>,
    /// The screening the run showed: the list loaded, and the refusal of
    /// a listed tenant.
    pub screening: Vec<String>,
    /// What the run showed of roles over mutual TLS.
    pub access: Vec<String>,
}

impl FleetReport {
    /// Chips whose appraisal passed.
    pub fn compliant(&self) -> usize {
        self.chips
            .iter()
            .filter(|c| c.verdict == Status::Pass)
            .count()
    }

    /// Failed claim name → indices of the chips that failed it.
    pub fn failures(&self) -> BTreeMap<String, Vec<usize>> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for chip in &self.chips {
            for (claim, _) in &chip.failed {
                out.entry(claim.clone()).or_default().push(chip.index);
            }
        }
        out
    }
}

/// What the fleet needs from the vendor: the provisioner CA to certify chips
/// and the keys to check tokens and results with.
pub struct Vendor<'a> {
    /// Provisioner CA certifying device identities.
    pub chip_ca: &'a CertifiedKey,
    /// The issuer's token key, built into chip firmware.
    pub issuer_keys: TrustedKeys,
    /// The verifier's result key, for checking results.
    pub verifier_keys: TrustedKeys,
}

struct Member {
    index: usize,
    host: Option<Arc<dyn Host>>,
    chip: SimChip,
    fault: Option<Fault>,
    tenant: &'static str,
    site: &'static SiteSpec,
    token: Vec<u8>,
    token_id: String,
}

/// Landmarks by site id.
pub type SiteLandmarks = BTreeMap<String, Vec<SimLandmark>>;

/// What every chip's attestation shares.
struct AttestContext {
    /// The issuer as the operator: renewals.
    issuer: IssuerClient<Channel>,
    /// The issuer as an auditor: licenses for the fleet analysis.
    auditor: IssuerClient<Channel>,
    /// The issuer's audit log, where the operator records every result.
    log: AuditLogClient<Channel>,
    verifier: VerifierClient<Channel>,
    issuer_keys: TrustedKeys,
    verifier_keys: TrustedKeys,
    grace_secs: i64,
    landmarks: Arc<SiteLandmarks>,
    clock: Arc<ScenarioClock>,
    concurrency: usize,
}

/// One chip's turn in one round: which license it presents.
#[derive(Clone, Debug)]
struct Visit {
    slot: usize,
    token: Vec<u8>,
    token_id: String,
}

/// What one turn produced.
#[derive(Clone, Debug)]
struct Attested {
    outcome: ChipOutcome,
    /// Every signed result the verifier returned, in order.
    signed: Vec<Vec<u8>>,
    /// The license the chip holds afterwards: the renewal, or the one it
    /// presented.
    token: Vec<u8>,
    token_id: String,
}

/// How far a relayed chip is taken from its site, km.
pub const RELAY_DISTANCE_KM: f64 = 1_500.0;

/// Landmarks of a site measure a chip when it is within this distance of
/// the site's centre, km, besides those of its licensed site.
pub const NEARBY_SITE_KM: f64 = 300.0;

/// The round in which a [`Fault::Reappearing`] chip comes back elsewhere.
pub const REAPPEAR_ROUND: u8 = 3;

fn center_of(site: &SiteSpec) -> Point {
    Point {
        latitude: site.latitude,
        longitude: site.longitude,
    }
}

/// The site after `site` in [`SITES`]: where moved chips go.
pub fn next_site(site: &SiteSpec) -> &'static SiteSpec {
    let at = SITES.iter().position(|s| s.id == site.id).unwrap_or(0);
    &SITES[(at + 1) % SITES.len()]
}

/// Where chip `m` physically is in `round`, and the relay it hides behind,
/// if any: within 2 km of its site's centre; far abroad behind a relay
/// there; or at the next site, for a chip that moved.
fn whereabouts(m: &Member, round: u8) -> (Point, Option<Point>) {
    let center = center_of(m.site);
    let bearing = (m.index * 37 % 360) as f64;
    match m.fault {
        Some(Fault::RelayedChip) => (
            destination(&center, bearing, RELAY_DISTANCE_KM),
            Some(center),
        ),
        Some(Fault::MovedAbroad) => (
            destination(&center_of(next_site(m.site)), bearing, 1.0),
            None,
        ),
        Some(Fault::Reappearing) if round == REAPPEAR_ROUND => (
            destination(&center_of(next_site(m.site)), bearing, 1.0),
            None,
        ),
        _ => (
            destination(&center, bearing, (m.index % 5) as f64 * 0.4),
            None,
        ),
    }
}

/// Tenant and site chip `m` claims in `round`: the truth about whom it
/// serves and where it is, except where its fault is a false claim.
fn claims_of(m: &Member, round: u8) -> (&'static str, &'static str) {
    let tenant = if m.fault == Some(Fault::WrongTenant) {
        UNLICENSED_TENANT
    } else {
        m.tenant
    };
    let site = match m.fault {
        Some(Fault::MovedSite) => "unlicensed-site",
        Some(Fault::Reappearing) if round == REAPPEAR_ROUND => next_site(m.site).id,
        _ => m.site.id,
    };
    (tenant, site)
}

/// Mutually authenticated channels to the servers, each as the role that
/// does the work: the vendor enrols, licenses and revokes; the operator
/// attests, renews and records results; an auditor reads licenses back for
/// the fleet analysis and the log.
#[derive(Clone, Debug)]
pub struct Links {
    /// The issuer, as the vendor administrator.
    pub admin: Channel,
    /// The issuer, as the operator of every fleet tenant.
    pub operator: Channel,
    /// The issuer, as an auditor.
    pub auditor: Channel,
    /// The verifier, as the operator.
    pub verifier: Channel,
}

impl Links {
    /// Connects to the servers at these URLs with the `admin`, `operator`
    /// and `auditor` client certificates of the TLS folder `tls_dir` (the
    /// layout `chipward-pki tls-init` writes).
    pub async fn connect(tls_dir: &Path, issuer: &str, verifier: &str) -> anyhow::Result<Self> {
        Ok(Self {
            admin: tls::connect_as(tls_dir, "admin", issuer).await?,
            operator: tls::connect_as(tls_dir, "operator", issuer).await?,
            auditor: tls::connect_as(tls_dir, "auditor", issuer).await?,
            verifier: tls::connect_as(tls_dir, "operator", verifier).await?,
        })
    }
}

/// Runs the whole loop for `plan` against the servers behind `links`.
/// With `plan.watch` and a clock that can move, the chips attest again
/// hours later and the report carries the fleet's integrity findings.
pub async fn run(
    plan: &FleetPlan,
    vendor: &Vendor<'_>,
    links: &Links,
    hosts: &[Arc<dyn Host>],
    landmarks: Arc<SiteLandmarks>,
    clock: Arc<ScenarioClock>,
) -> anyhow::Result<FleetReport> {
    let started = Instant::now();
    let log = AuditLogClient::new(links.operator.clone());
    let admin = IssuerClient::new(links.admin.clone());
    let verifier = VerifierClient::new(links.verifier.clone());

    let made = manufacture(plan, vendor.chip_ca)?;
    let mut members = enrol_and_license(made, &admin, clock.now()).await?;
    for m in &mut members {
        m.host = hosts.get(m.index / CHIPS_PER_HOST).cloned();
    }
    for (h, host) in hosts.iter().enumerate() {
        let held: Vec<ChipId> = members
            .iter()
            .filter(|m| m.index / CHIPS_PER_HOST == h)
            .map(|m| m.chip.chip_id)
            .collect();
        let host = Arc::clone(host);
        tokio::task::spawn_blocking(move || host.attach(&held)).await??;
    }
    revoke_and_wait(&members, &admin, &verifier).await?;

    let members = Arc::new(members);
    let ctx = Arc::new(AttestContext {
        issuer: IssuerClient::new(links.operator.clone()),
        auditor: IssuerClient::new(links.auditor.clone()),
        log,
        verifier,
        issuer_keys: vendor.issuer_keys.clone(),
        verifier_keys: vendor.verifier_keys.clone(),
        grace_secs: plan.grace_secs,
        landmarks,
        clock: Arc::clone(&clock),
        concurrency: plan.concurrency.max(1),
    });
    let visits = members
        .iter()
        .enumerate()
        .map(|(slot, m)| Visit {
            slot,
            token: m.token.clone(),
            token_id: m.token_id.clone(),
        })
        .collect();
    let first = attest_round(&members, visits, 1, &ctx).await?;
    let integrity = if plan.watch && clock.can_move() {
        Some(watch::follow_up(&members, &first, &ctx).await?)
    } else {
        None
    };
    Ok(FleetReport {
        chips: first.into_iter().map(|a| a.outcome).collect(),
        elapsed: started.elapsed(),
        hosts_note: format!("hosts: {}", hosts.len()),
        integrity,
        audit: None,
        screening: Vec::new(),
        access: Vec::new(),
    })
}

/// Every visit of one round, `ctx.concurrency` at a time, in fleet order.
async fn attest_round(
    members: &Arc<Vec<Member>>,
    visits: Vec<Visit>,
    round: u8,
    ctx: &Arc<AttestContext>,
) -> anyhow::Result<Vec<Attested>> {
    let gate = Arc::new(Semaphore::new(ctx.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for visit in visits {
        let (members, gate, ctx) = (Arc::clone(members), Arc::clone(&gate), Arc::clone(ctx));
        tasks.spawn(async move {
            let _permit = gate.acquire().await?;
            attest_one(&members[visit.slot], &visit, round, &ctx).await
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        out.push(joined??);
    }
    out.sort_by_key(|a| a.outcome.index);
    Ok(out)
}

fn manufacture(
    plan: &FleetPlan,
    ca: &CertifiedKey,
) -> anyhow::Result<Vec<(usize, SimChip, Option<Fault>)>> {
    let mut out: Vec<(usize, SimChip, Option<Fault>)> = Vec::with_capacity(plan.chips);
    for index in 0..plan.chips {
        let fault = plan.fault_for(index);
        // A clone or a leaked key copies the chip before it, which carries
        // no fault.
        let chip = match (fault, out.last()) {
            (Some(Fault::ClonedIdentity), Some((_, victim, _))) => SimChip::clone_of(victim)?,
            (Some(Fault::LeakedKey), Some((_, victim, _))) => SimChip::leaked_copy(victim)?,
            _ => {
                let mut chip =
                    SimChip::manufacture(ca, &plan.model, index as u64 + 1, &plan.firmware)?;
                if fault == Some(Fault::TamperedFirmware) {
                    chip.tamper_firmware(3);
                }
                chip
            }
        };
        out.push((index, chip, fault));
    }
    Ok(out)
}

const DAY: i64 = 86_400;

/// The request that licenses chip `index` for the tenant and site of
/// [`FleetPlan::placement`], from `not_before` for `lifetime_seconds` (0
/// for each takes the issuer's default: now, and its standard lifetime).
pub fn license_request(
    index: usize,
    chip_id: &ChipId,
    not_before: i64,
    lifetime_seconds: i64,
) -> IssueLicenseRequest {
    let (tenant, site) = FleetPlan::placement(index);
    IssueLicenseRequest {
        chip_id: chip_id.to_hex(),
        tenant: tenant.into(),
        site: Some(Site {
            id: site.id.into(),
            latitude: site.latitude,
            longitude: site.longitude,
            radius_km: 50.0,
        }),
        not_before,
        lifetime_seconds,
        entitlements: vec!["inference".into(), "training".into()],
        eccn: "3A090.a".into(),
        tenant_party: Some(legal_party(tenant)),
        end_user: Some(legal_party(tenant)),
    }
}

async fn enrol_and_license(
    made: Vec<(usize, SimChip, Option<Fault>)>,
    issuer: &IssuerClient<Channel>,
    now: i64,
) -> anyhow::Result<Vec<Member>> {
    let mut members: Vec<Member> = Vec::with_capacity(made.len());
    for (index, chip, fault) in made {
        let (tenant, site) = FleetPlan::placement(index);
        // A clone runs under the license of the chip it copied.
        if fault == Some(Fault::ClonedIdentity)
            && let Some(victim) = members.last()
        {
            let (token, token_id) = (victim.token.clone(), victim.token_id.clone());
            let (tenant, site) = (victim.tenant, victim.site);
            members.push(Member {
                index,
                host: None,
                chip,
                fault,
                tenant,
                site,
                token,
                token_id,
            });
            continue;
        }
        let mut client = issuer.clone();
        // A leaked key's copy is licensed under the chip's enrolled
        // identity, for another site.
        if fault != Some(Fault::LeakedKey) {
            client
                .enrol_chip(EnrolChipRequest {
                    cert_chain: chip.enrolment_chain.clone(),
                })
                .await?;
        }
        let (not_before, lifetime) = if fault == Some(Fault::ExpiredLicense) {
            (now - 3 * DAY, 3_600)
        } else {
            (0, 0)
        };
        let license = client
            .issue_license(license_request(index, &chip.chip_id, not_before, lifetime))
            .await?
            .into_inner()
            .license
            .ok_or_else(|| anyhow::anyhow!("issuer returned no license"))?;
        members.push(Member {
            index,
            host: None,
            chip,
            fault,
            tenant,
            site,
            token: license.token,
            token_id: license.token_id,
        });
    }
    Ok(members)
}

/// Revokes the licenses of chips carrying that fault, then waits until the
/// verifier holds a revocation list that includes them.
async fn revoke_and_wait(
    members: &[Member],
    issuer: &IssuerClient<Channel>,
    verifier: &VerifierClient<Channel>,
) -> anyhow::Result<()> {
    let mut newest = 0;
    for m in members
        .iter()
        .filter(|m| m.fault == Some(Fault::RevokedLicense))
    {
        let request = RevokeLicenseRequest {
            token_id: m.token_id.clone(),
            reason: "fleet fault injection".into(),
        };
        newest = newest.max(
            issuer
                .clone()
                .revoke_license(request)
                .await?
                .into_inner()
                .revocation_seq,
        );
    }
    await_revocation_list(verifier, newest).await
}

/// Waits, for up to 30 s, until the verifier holds a revocation list of
/// sequence number `newest` or later: without one no appraisal passes.
pub async fn await_revocation_list(
    verifier: &VerifierClient<Channel>,
    newest: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = verifier.clone().info(InfoRequest {}).await?.into_inner();
        if info.revocation_seq >= newest && info.revocation_age_ms >= 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "verifier did not pick up revocation list {newest} in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The landmarks of the chip's licensed site, and of any site it sits near,
/// measure it where it physically is (through the relay, if it hides behind
/// one), for the appraisal the chip's evidence nonce names.
fn measure(
    m: &Member,
    round: u8,
    ctx: &AttestContext,
    binding: &[u8; 32],
    now: i64,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let (position, relay) = whereabouts(m, round);
    let network = metro_network();
    let mut rng = Rng::new(m.index as u64 ^ now as u64 ^ u64::from(round) << 56);
    let mut records = Vec::new();
    for site in SITES
        .iter()
        .filter(|s| s.id == m.site.id || center_of(s).distance_km(&position) <= NEARBY_SITE_KM)
    {
        for l in ctx.landmarks.get(site.id).into_iter().flatten() {
            records.push(l.measure(
                &m.chip,
                &position,
                relay.as_ref(),
                binding,
                &network,
                &mut rng,
                now * 1000,
            )?);
        }
    }
    Ok(records)
}

async fn attest_one(
    m: &Member,
    visit: &Visit,
    round: u8,
    ctx: &AttestContext,
) -> anyhow::Result<Attested> {
    let (mut issuer, mut verifier) = (ctx.issuer.clone(), ctx.verifier.clone());
    let now = ctx.clock.now();
    let (tenant, site) = claims_of(m, round);

    let challenge = verifier
        .challenge(ChallengeRequest {})
        .await?
        .into_inner()
        .challenge;
    let binding = evidence_nonce(&challenge, tenant, site);
    let host = match &m.host {
        Some(host) => {
            let host = Arc::clone(host);
            Some(tokio::task::spawn_blocking(move || host.evidence(&binding)).await??)
        }
        None => None,
    };
    let request = AppraiseRequest {
        challenge: challenge.clone(),
        evidence: Some(m.chip.attest(&challenge, tenant, site)?),
        license_token: visit.token.clone(),
        tenant: tenant.into(),
        site_id: site.into(),
        host,
        landmark_records: measure(m, round, ctx, &binding, now)?,
    };
    let mut signed = vec![
        verifier
            .appraise(request.clone())
            .await?
            .into_inner()
            .result,
    ];
    if m.fault == Some(Fault::ReplayedEvidence) {
        // The first answer was genuine; the chip now sends it again.
        signed.push(verifier.appraise(request).await?.into_inner().result);
    }
    for result in &signed {
        ctx.log
            .clone()
            .record_result(RecordResultRequest {
                attestation_result: result.clone(),
            })
            .await?;
    }
    let last = signed.last().cloned().unwrap_or_default();
    let verified = result::verify(&last, &ctx.verifier_keys)?;
    let r = verified.result();

    let renewal = issuer
        .renew_license(RenewLicenseRequest {
            token_id: visit.token_id.clone(),
            attestation_result: last,
            lifetime_seconds: 0,
        })
        .await;
    let (renewal, token, token_id) = match renewal.map(|r| r.into_inner().license) {
        Ok(Some(l)) => (Ok(()), l.token, l.token_id),
        Ok(None) => (Ok(()), visit.token.clone(), visit.token_id.clone()),
        Err(status) => (
            Err(status.code()),
            visit.token.clone(),
            visit.token_id.clone(),
        ),
    };

    let outcome = ChipOutcome {
        index: m.index,
        chip_id: m.chip.chip_id.to_hex(),
        tenant: m.tenant.into(),
        site: m.site.id.into(),
        fault: m.fault,
        host: m.host.as_ref().map(|h| h.name().to_owned()),
        location: r
            .claim(chipward_verifier::claims::LOCATION)
            .map(|c| (c.status, c.reason.clone())),
        certified_km: r
            .location
            .as_ref()
            .filter(|_| {
                r.claim(chipward_verifier::claims::LOCATION)
                    .is_some_and(|c| c.status == Status::Pass)
            })
            .and_then(|b| b.farthest_km),
        verdict: r.verdict,
        failed: r
            .claims
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| (c.claim.clone(), c.code.clone()))
            .collect(),
        unknown: r
            .claims
            .iter()
            .filter(|c| c.status == Status::Unknown)
            .map(|c| c.claim.clone())
            .collect(),
        renewal,
        license_state: m
            .chip
            .license_state(&token, &ctx.issuer_keys, now, ctx.grace_secs),
    };
    Ok(Attested {
        outcome,
        signed,
        token,
        token_id,
    })
}

mod watch;
pub use watch::{Integrity, REAPPEAR_AFTER_SECS, ROUND_GAP_SECS};
