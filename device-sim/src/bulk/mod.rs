//! Honest chips in bulk, for the load command ([`load`]) and the demo's
//! scale run ([`scale`]): each chip is made, enrolled and licensed through
//! the issuer, and attests through the verifier, over gRPC, with no fault
//! injected, so every appraisal must pass and any that does not is a
//! finding.
//!
//! The servers are either started here on loopback, as the demo starts
//! them (without TPM hosts or landmarks), or already running and reached by
//! URL. Every channel comes from [`demo::connect`], over mutual TLS with
//! the certificates of the PKI's `tls` folder: the issuer as `admin` (it
//! enrols and licenses), the verifier as `operator`. Nothing here is
//! attacker-controlled: the servers are our own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chipward_certs::pki::DevPki;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{AppraiseRequest, ChallengeRequest, EnrolChipRequest};
use chipward_proto::rate_limit::{MAX_BURST, Rate};
use chipward_proto::result::{AttestationResult, Status};
use chipward_verifier::rate_limits::{Limit, RateLimitSettings};
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::chip::SimChip;
use crate::clock::ScenarioClock;
use crate::demo::{self, Services};
use crate::fleet::{self, FleetPlan, SiteLandmarks};

pub mod load;
pub mod scale;

/// The issuer and verifier a bulk run drives, and the PKI its chips come
/// from.
pub struct Target {
    /// The PKI: the provisioner CA that certifies the chips, and the keys
    /// that check licenses and results.
    pub pki: Arc<DevPki>,
    /// Issuer URL.
    pub issuer_url: String,
    /// The TLS folder whose `admin` and `operator` certificates connect.
    pub tls_dir: PathBuf,
    /// Verifier URL.
    pub verifier_url: String,
    /// Where the servers run, in words, for the report.
    pub description: String,
    /// The issuer's SQLite ledger, when the servers run in this process.
    ledger: Option<PathBuf>,
    // Servers stop before their folder is removed: fields drop in order.
    _services: Option<Services>,
    _dir: Option<TempDir>,
}

impl Target {
    /// Starts issuer and verifier in this process on loopback, with their
    /// PKI and ledger in `dir` (which must not hold a PKI yet) or in a
    /// temporary folder, and loads the demo's screening list, as the demo
    /// does.
    pub async fn in_process(dir: Option<&Path>) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let dir: PathBuf = dir.map_or_else(|| temp.path().to_path_buf(), Path::to_path_buf);
        let plan = FleetPlan {
            faults: false,
            hosts: 0,
            landmarks: false,
            watch: false,
            ..FleetPlan::default()
        };
        let clock = Arc::new(ScenarioClock::wall());
        let landmarks = SiteLandmarks::new();
        // One client appraises a few chips many times a second: no budget
        // may stop it, or the run would measure the limits.
        let mut limits = RateLimitSettings::default();
        for limit in Limit::ALL {
            limits = limits.with_rate(limit, Rate::new(MAX_BURST, Duration::from_millis(1))?);
        }
        let services =
            demo::start_services_with(&dir, &plan, &[], &landmarks, &clock, &limits).await?;
        let issuer_url = format!("https://{}", services.issuer);
        let tls_dir = services.tls_dir.clone();
        crate::records::load_demo_list(demo::connect(&tls_dir, "admin", &issuer_url).await?)
            .await?;
        Ok(Self {
            pki: Arc::new(DevPki::load(&dir.join("pki"))?),
            verifier_url: format!("https://{}", services.verifier),
            tls_dir,
            issuer_url,
            description: format!(
                "issuer and verifier in this process on loopback; PKI and SQLite ledger in {}",
                dir.display()
            ),
            ledger: Some(dir.join("ledger.sqlite")),
            _services: Some(services),
            _dir: Some(temp),
        })
    }

    /// Servers already running at these URLs, whose PKI is in `pki_dir`
    /// (with the client certificates in `pki_dir/tls`).
    pub fn running(issuer_url: &str, verifier_url: &str, pki_dir: &Path) -> anyhow::Result<Self> {
        let pki = DevPki::load(pki_dir)
            .with_context(|| format!("loading the PKI in {}", pki_dir.display()))?;
        Ok(Self {
            pki: Arc::new(pki),
            issuer_url: issuer_url.to_owned(),
            verifier_url: verifier_url.to_owned(),
            tls_dir: pki_dir.join("tls"),
            description: format!(
                "issuer {issuer_url} and verifier {verifier_url}, PKI in {}",
                pki_dir.display()
            ),
            ledger: None,
            _services: None,
            _dir: None,
        })
    }

    /// A new channel to the issuer.
    pub async fn issuer(&self) -> anyhow::Result<Channel> {
        demo::connect(&self.tls_dir, "admin", &self.issuer_url).await
    }

    /// A new channel to the verifier.
    pub async fn verifier(&self) -> anyhow::Result<Channel> {
        demo::connect(&self.tls_dir, "operator", &self.verifier_url).await
    }

    /// Waits until the verifier holds a revocation list, without which no
    /// appraisal passes.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let verifier = VerifierClient::new(self.verifier().await?);
        fleet::await_revocation_list(&verifier, 0).await
    }

    /// Whether the servers run in this process, so that its CPU time and
    /// memory include theirs.
    pub fn in_this_process(&self) -> bool {
        self._services.is_some()
    }

    /// Bytes the issuer's ledger takes on disk (database and write-ahead
    /// log), when the servers run in this process.
    pub fn ledger_size(&self) -> Option<u64> {
        let db = self.ledger.as_ref()?;
        let wal = db.with_extension("sqlite-wal");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        Some(size(db) + size(&wal))
    }

    /// The keys that check the verifier's results.
    pub fn result_keys(&self) -> TrustedKeys {
        let key = &self.pki.verifier_result_key;
        TrustedKeys::new().with(key.key_id(), key.public_key())
    }
}

/// A chip made, enrolled and licensed.
#[derive(Debug)]
pub struct Licensed {
    /// Position in the run; also fixes tenant and site.
    pub index: usize,
    /// The chip.
    pub chip: SimChip,
    /// Licensed tenant, which the chip claims.
    pub tenant: &'static str,
    /// Licensed site, which the chip claims.
    pub site: &'static str,
    /// The license token.
    pub token: Vec<u8>,
}

/// Manufactures chip `index` of the default model and firmware, off the
/// async threads: its keys and certificates are CPU work.
pub async fn make(pki: &Arc<DevPki>, index: usize) -> anyhow::Result<SimChip> {
    let pki = Arc::clone(pki);
    let plan = FleetPlan::default();
    let serial = index as u64 + 1;
    let chip = tokio::task::spawn_blocking(move || {
        SimChip::manufacture(&pki.chip_ca, &plan.model, serial, &plan.firmware)
    });
    Ok(chip.await??)
}

/// Enrols `chip` with the issuer and licenses it for the tenant and site
/// of [`FleetPlan::placement`] of `index`.
pub async fn license(
    issuer: &mut IssuerClient<Channel>,
    index: usize,
    chip: SimChip,
) -> anyhow::Result<Licensed> {
    let enrolment = EnrolChipRequest {
        cert_chain: chip.enrolment_chain.clone(),
    };
    issuer.enrol_chip(enrolment).await?;
    let request = fleet::license_request(index, &chip.chip_id, 0, 0);
    let license = issuer.issue_license(request).await?.into_inner().license;
    let license = license.context("issuer returned no license")?;
    let (tenant, site) = FleetPlan::placement(index);
    Ok(Licensed {
        index,
        chip,
        tenant,
        site: site.id,
        token: license.token,
    })
}

/// One attestation of `chip`: a challenge, the chip's evidence (made off
/// the async threads), and Appraise. Returns the signed result and how long
/// the Appraise call took, from sending it to its answer.
pub async fn attest(
    verifier: &mut VerifierClient<Channel>,
    chip: &Arc<Licensed>,
) -> anyhow::Result<(Vec<u8>, Duration)> {
    let challenge = verifier.challenge(ChallengeRequest {}).await?;
    let challenge = challenge.into_inner().challenge;
    let prover = Arc::clone(chip);
    let asked = challenge.clone();
    let evidence =
        tokio::task::spawn_blocking(move || prover.chip.attest(&asked, prover.tenant, prover.site))
            .await??;
    let request = AppraiseRequest {
        challenge,
        evidence: Some(evidence),
        license_token: chip.token.clone(),
        tenant: chip.tenant.into(),
        site_id: chip.site.into(),
        host: None,
        landmark_records: Vec::new(),
    };
    let sent = Instant::now();
    let signed = verifier.appraise(request).await?.into_inner().result;
    Ok((signed, sent.elapsed()))
}

/// `None` when `result` passed; otherwise why not, as its claims that did
/// not pass with their codes.
pub fn not_passed(result: &AttestationResult) -> Option<String> {
    if result.verdict == Status::Pass {
        return None;
    }
    let claims: Vec<String> = result
        .claims
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| format!("{} {}", c.claim, c.code))
        .collect();
    Some(format!(
        "verdict {:?}: {}",
        result.verdict,
        claims.join(", ")
    ))
}
