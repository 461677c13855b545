//! The burst the issuer is killed in: one worker per chip, each on its own
//! connection, alternately issuing a new license for its chip and renewing
//! the newest license of its renewal chain with a passing result signed by
//! the PKI's verifier key; beside them, a reader fetching signed tree heads.
//! Every answer that arrives is recorded: it is a promise the restarted
//! issuer must keep, whenever it arrived.
//!
//! A worker stops at its first failed call. A failure before the kill is a
//! fault of the issuer and fails the test; a failure of a call that began
//! before the kill shows that the kill cut requests in flight. The issuer
//! is frozen before it is killed, so that the calls the workers send
//! meanwhile certainly go unanswered: answers travel fast on loopback, and
//! a call counted in flight here may already be answered there.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chipward_certs::pki::DevPki;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    GetTreeHeadRequest, IssueLicenseRequest, License, RenewLicenseRequest, Site,
};
use chipward_proto::result::{AttestationResult, ClaimResult, Status as Verdict};
use tokio::task::JoinHandle;
use tonic::Status;
use tonic::transport::Channel;

use super::{CALL_LIMIT, Chip, channel};

/// Longest the burst may take to reach its acknowledgements.
const BURST_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two tree head fetches.
const HEAD_EVERY: Duration = Duration::from_millis(25);

/// What the issuer acknowledged before it died, and how the kill landed.
#[derive(Debug, Default)]
pub(super) struct Record {
    /// Every license acknowledged, issued or renewed, in arrival order.
    pub(super) acks: Vec<License>,
    /// Every signed tree head acknowledged, in arrival order.
    pub(super) heads: Vec<Head>,
    /// Calls begun before the kill that failed.
    pub(super) cut: usize,
    /// Calls awaiting an answer when the kill was sent.
    pub(super) in_flight_at_kill: usize,
}

/// A signed tree head acknowledged before the kill.
#[derive(Clone, Debug)]
pub(super) struct Head {
    /// As the issuer signed it.
    pub(super) signed: Vec<u8>,
    /// The size it states.
    pub(super) size: u64,
    /// How many licenses had been acknowledged when it was asked for: the
    /// first that many acknowledgements must lie inside it.
    pub(super) acks_before: usize,
}

impl Record {
    /// The acknowledged first issues.
    pub(super) fn issued(&self) -> impl Iterator<Item = &License> {
        self.acks.iter().filter(|l| l.renewed_from.is_empty())
    }

    /// The acknowledged renewals.
    pub(super) fn renewed(&self) -> impl Iterator<Item = &License> {
        self.acks.iter().filter(|l| !l.renewed_from.is_empty())
    }
}

/// State the workers share.
#[derive(Default)]
struct Shared {
    record: Mutex<Record>,
    /// Failures before the kill, described.
    faults: Mutex<Vec<String>>,
    killed: AtomicBool,
    in_flight: AtomicUsize,
}

impl Shared {
    /// Runs one call, counting it in flight, and files its failure.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Option<T> {
        let began_before_kill = !self.killed.load(Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = tokio::time::timeout(CALL_LIMIT, call).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let error = match answer {
            Ok(Ok(response)) => return Some(response.into_inner()),
            Ok(Err(status)) => format!("{what}: {:?} {}", status.code(), status.message()),
            Err(_) => format!("{what}: no answer within {CALL_LIMIT:?}"),
        };
        if !self.killed.load(Ordering::SeqCst) {
            self.faults.lock().unwrap().push(error);
        } else if began_before_kill {
            self.record.lock().unwrap().cut += 1;
        }
        None
    }

    fn ack(&self, license: &License) {
        self.record.lock().unwrap().acks.push(license.clone());
    }
}

/// The running burst.
pub(super) struct Burst {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Burst {
    /// Starts one worker per chip and the tree head reader.
    pub(super) async fn start(addr: SocketAddr, chips: &[Chip], pki: Arc<DevPki>) -> Self {
        let shared = Arc::new(Shared::default());
        let mut tasks = Vec::new();
        for chip in chips {
            let worker = Worker {
                chip: chip.clone(),
                client: IssuerClient::new(channel(addr).await),
                operator: IssuerClient::new(super::operator_channel(addr)),
                pki: Arc::clone(&pki),
                shared: Arc::clone(&shared),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        let log = AuditLogClient::new(channel(addr).await);
        tasks.push(tokio::spawn(read_heads(log, Arc::clone(&shared))));
        Self { shared, tasks }
    }

    /// Waits until `count` licenses were acknowledged; fails the test on a
    /// fault or when the burst is too slow.
    pub(super) async fn wait_for_acks(&self, count: usize) {
        let deadline = Instant::now() + BURST_LIMIT;
        loop {
            let faults = self.shared.faults.lock().unwrap().clone();
            assert!(
                faults.is_empty(),
                "calls failed before the kill: {faults:#?}"
            );
            if self.shared.record.lock().unwrap().acks.len() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {count} acknowledgements within {BURST_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Once the issuer is frozen: waits until `count` calls await an
    /// answer that cannot come, then a moment more for answers sent before
    /// the freeze to arrive.
    pub(super) async fn wait_for_blocked_calls(&self, count: usize) {
        let deadline = Instant::now() + BURST_LIMIT;
        while self.shared.in_flight.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "fewer than {count} calls were waiting within {BURST_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Notes that the kill is about to be sent: from now on failures are
    /// expected.
    pub(super) fn mark_killed(&self) {
        self.shared.killed.store(true, Ordering::SeqCst);
        let in_flight = self.shared.in_flight.load(Ordering::SeqCst);
        self.shared.record.lock().unwrap().in_flight_at_kill = in_flight;
    }

    /// Waits for every worker to stop and hands over the record.
    pub(super) async fn finish(self) -> Record {
        for task in self.tasks {
            tokio::time::timeout(2 * CALL_LIMIT, task)
                .await
                .expect("a worker stops once the issuer is gone")
                .unwrap();
        }
        let faults = self.shared.faults.lock().unwrap().clone();
        assert!(
            faults.is_empty(),
            "calls failed before the kill: {faults:#?}"
        );
        let record = std::mem::take(&mut *self.shared.record.lock().unwrap());
        let (issued, renewed) = (record.issued().count(), record.renewed().count());
        assert!(
            issued > 0 && renewed > 0,
            "the burst must hold both kinds: {issued} issued, {renewed} renewed"
        );
        assert!(
            record.cut > 0,
            "the kill should cut calls in flight; {} were in flight",
            record.in_flight_at_kill
        );
        record
    }
}

/// One chip's share of the burst.
struct Worker {
    chip: Chip,
    /// The vendor administrator, who issues.
    client: IssuerClient<Channel>,
    /// The operator, who renews.
    operator: IssuerClient<Channel>,
    pki: Arc<DevPki>,
    shared: Arc<Shared>,
}

impl Worker {
    async fn run(mut self) {
        let mut newest: Option<License> = None;
        loop {
            let request = issue_request(&self.chip);
            let call = self.client.issue_license(request);
            let Some(issued) = self.shared.call("issue", call).await else {
                return;
            };
            let issued = issued.license.expect("an issue answer carries its license");
            self.shared.ack(&issued);
            let current = newest.take().unwrap_or(issued);

            let request = RenewLicenseRequest {
                token_id: current.token_id.clone(),
                attestation_result: passing_result(&self.pki, &current),
                lifetime_seconds: 0,
            };
            let call = self.operator.renew_license(request);
            let Some(renewed) = self.shared.call("renew", call).await else {
                return;
            };
            let renewed = renewed.license.expect("a renew answer carries its license");
            self.shared.ack(&renewed);
            newest = Some(renewed);
        }
    }
}

/// A passing result for `license`, appraised now, signed with the PKI's
/// verifier result key, which the issuer trusts by default.
pub(super) fn passing_result(pki: &DevPki, license: &License) -> Vec<u8> {
    let claims = ["identity", "firmware", "license", "tenant", "site"]
        .iter()
        .map(|name| ClaimResult {
            claim: (*name).into(),
            status: Verdict::Pass,
            code: "ok".into(),
            reason: String::new(),
        })
        .collect();
    let result = AttestationResult {
        appraised_at: unix_now(),
        chip_id: license.chip_id.clone(),
        model: format!("{} Provisioner CA", super::MODEL),
        tenant: license.tenant.clone(),
        site_id: license.site.as_ref().unwrap().id.clone(),
        token_id: license.token_id.clone(),
        evidence_sha256: "ab".repeat(32),
        measurements: vec![],
        claims,
        verdict: Verdict::Pass,
        location: None,
    };
    let key = &pki.verifier_result_key;
    result.sign(&key.key_id(), |m| key.sign(m))
}

/// A license for `chip` at one site, with the issuer's default lifetime.
pub(super) fn issue_request(chip: &Chip) -> IssueLicenseRequest {
    IssueLicenseRequest {
        chip_id: chip.id.clone(),
        tenant: "acme-ai".into(),
        site: Some(Site {
            id: "fra-1".into(),
            latitude: 50.1109,
            longitude: 8.6821,
            radius_km: 25.0,
        }),
        entitlements: vec!["fp8".into()],
        eccn: "3A090.a".into(),
        ..IssueLicenseRequest::default()
    }
}

/// Fetches signed tree heads until the issuer is gone.
async fn read_heads(mut log: AuditLogClient<Channel>, shared: Arc<Shared>) {
    loop {
        let acks_before = shared.record.lock().unwrap().acks.len();
        let call = log.get_tree_head(GetTreeHeadRequest {});
        let Some(answer) = shared.call("tree head", call).await else {
            return;
        };
        let head = Head {
            signed: answer.signed_tree_head,
            size: answer.tree_size,
            acks_before,
        };
        shared.record.lock().unwrap().heads.push(head);
        tokio::time::sleep(HEAD_EVERY).await;
    }
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}
