//! Hosts with a real TPM 2.0 (swtpm) end to end over gRPC: provisioned with
//! EK certificates, enrolled by credential activation, and their quotes
//! appraised beside their chips' evidence; then the ways a host can lie.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chipward_certs::pem;
use chipward_certs::pki::DevPki;
use chipward_device_sim::chip::SimChip;
use chipward_device_sim::clock::ScenarioClock;
use chipward_device_sim::demo;
use chipward_device_sim::fleet::{Fault, FleetPlan, Host};
use chipward_device_sim::host::{self, SimHost};
use chipward_device_sim::swtpm;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{
    AppraiseRequest, ChallengeRequest, EnrolChipRequest, HostEvidence, IssueLicenseRequest, Site,
};
use chipward_proto::nonce::evidence_nonce;
use chipward_proto::result::{self, AttestationResult, Status};
use chipward_verifier::claims::{self, code};
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_tpm_hosts_fails_exactly_its_injected_faults() {
    assert!(
        swtpm::available(),
        "swtpm is not installed: run scripts/test.sh (it installs swtpm and swtpm-tools)"
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan {
        chips: 40,
        hosts: 2,
        ..FleetPlan::default()
    };
    let report = demo::run(dir.path(), &plan).await.unwrap();

    let hosted: Vec<_> = report.chips.iter().filter(|c| c.host.is_some()).collect();
    assert_eq!(hosted.len(), 10, "{}", report.hosts_note);
    for chip in &report.chips {
        let failed: BTreeSet<&str> = chip
            .failed
            .iter()
            .map(|(claim, _)| claim.as_str())
            .collect();
        let expected: BTreeSet<&str> = match chip.fault.and_then(Fault::caught_by) {
            Some((claim, Status::Fail)) => [claim].into_iter().collect(),
            _ => BTreeSet::new(),
        };
        assert_eq!(failed, expected, "chip {}: {chip:?}", chip.index);
        if chip.host.is_some() && chip.fault.is_none() {
            assert_eq!(
                chip.verdict,
                Status::Pass,
                "hosted chip {}: {chip:?}",
                chip.index
            );
        }
    }
}

/// One swtpm host holding one chip licensed to acme-ai, with the services
/// running.
struct World {
    _dir: tempfile::TempDir,
    _services: demo::Services,
    host: Arc<dyn Host>,
    chip: SimChip,
    token: Vec<u8>,
    verifier: VerifierClient<Channel>,
    result_keys: TrustedKeys,
    // Last, so the host's TPM connection closes before swtpm stops.
    _swtpm: swtpm::Swtpm,
}

/// The host records `tenant` and boots `firmware`.
async fn world(tenant: &str, firmware: &str) -> World {
    assert!(
        swtpm::available(),
        "swtpm is not installed: run scripts/test.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan {
        hosts: 1,
        ..FleetPlan::default()
    };
    let tpm = swtpm::Swtpm::start().unwrap();
    let pem = |path: std::path::PathBuf| {
        pem::parse_certificates(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let services = demo::start_services(
        dir.path(),
        &plan,
        &pem(tpm.root_ca_pem()),
        &Default::default(),
        &Arc::new(ScenarioClock::wall()),
    )
    .await
    .unwrap();
    let sim = Arc::new(SimHost::boot("host-0", &tpm.tcti(), tenant, firmware).unwrap());
    let mut issuer = IssuerClient::new(services.issuer_as("admin").await.unwrap());
    host::enrol(&sim, &mut issuer, pem(tpm.issuer_ca_pem()))
        .await
        .unwrap();
    let host: Arc<dyn Host> = sim;

    let pki = DevPki::load(&dir.path().join("pki")).unwrap();
    let chip = SimChip::manufacture(&pki.chip_ca, &plan.model, 1, &plan.firmware).unwrap();
    host.attach(&[chip.chip_id]).unwrap();
    let token = enrol_and_license(&mut issuer, &chip).await;
    let verifier = VerifierClient::new(services.verifier_as("operator").await.unwrap());
    let key = &pki.verifier_result_key;
    World {
        _dir: dir,
        _services: services,
        _swtpm: tpm,
        host,
        chip,
        token,
        verifier,
        result_keys: TrustedKeys::new().with(key.key_id(), key.public_key()),
    }
}

/// Enrols `chip` and licenses it to acme-ai at fra-1; returns the token.
async fn enrol_and_license(issuer: &mut IssuerClient<Channel>, chip: &SimChip) -> Vec<u8> {
    let chain = chip.enrolment_chain.clone();
    issuer
        .enrol_chip(EnrolChipRequest { cert_chain: chain })
        .await
        .unwrap();
    let site = Site {
        id: "fra-1".into(),
        latitude: 50.11,
        longitude: 8.68,
        radius_km: 50.0,
    };
    let request = IssueLicenseRequest {
        chip_id: chip.chip_id.to_hex(),
        tenant: "acme-ai".into(),
        site: Some(site),
        not_before: 0,
        lifetime_seconds: 0,
        entitlements: vec![],
        eccn: "3A090.a".into(),
        tenant_party: None,
        end_user: None,
    };
    issuer
        .issue_license(request)
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap()
        .token
}

impl World {
    /// Appraises the chip with host evidence made for its nonce, altered by
    /// `tamper` before sending.
    async fn appraise(&mut self, tamper: impl FnOnce(&mut HostEvidence)) -> AttestationResult {
        let challenge = self
            .verifier
            .challenge(ChallengeRequest {})
            .await
            .unwrap()
            .into_inner()
            .challenge;
        let nonce = evidence_nonce(&challenge, "acme-ai", "fra-1");
        let mut host = self.host.evidence(&nonce).unwrap();
        tamper(&mut host);
        let request = AppraiseRequest {
            evidence: Some(self.chip.attest(&challenge, "acme-ai", "fra-1").unwrap()),
            challenge,
            license_token: self.token.clone(),
            tenant: "acme-ai".into(),
            site_id: "fra-1".into(),
            host: Some(host),
            landmark_records: Vec::new(),
        };
        let signed = self
            .verifier
            .appraise(request)
            .await
            .unwrap()
            .into_inner()
            .result;
        result::verify(&signed, &self.result_keys)
            .unwrap()
            .result()
            .clone()
    }
}

fn failed(r: &AttestationResult) -> Vec<(&str, &str)> {
    r.claims
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| (c.claim.as_str(), c.code.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_lies_are_caught_claim_by_claim() {
    let mut w = world("acme-ai", &FleetPlan::default().host_firmware).await;

    let genuine = w.appraise(|_| {}).await;
    assert_eq!(genuine.verdict, Status::Pass, "{genuine:?}");
    for claim in [
        claims::HOST_BINDING,
        claims::HOST_QUOTE,
        claims::HOST_CLOCK,
        claims::HOST_FIRMWARE,
        claims::HOST_TENANT,
    ] {
        assert_eq!(
            genuine.claim(claim).unwrap().status,
            Status::Pass,
            "{claim}"
        );
    }

    // A PCR value the quote did not sign, reported in place of the real one.
    let lying = w.appraise(|h| h.pcrs[3].value = vec![0; 32]).await;
    assert_eq!(failed(&lying), vec![(claims::HOST_QUOTE, code::HOST_QUOTE)]);

    // A binding signed by someone other than the issuer.
    let forged = w.appraise(|h| h.ak_binding[40] ^= 1).await;
    assert_eq!(
        failed(&forged),
        vec![(claims::HOST_BINDING, code::HOST_BINDING)]
    );

    // A quote made for another appraisal's nonce.
    let other_nonce = w.host.evidence(&[7; 32]).unwrap();
    let stale = w
        .appraise(|h| {
            *h = HostEvidence {
                ak_binding: h.ak_binding.clone(),
                ..other_nonce
            }
        })
        .await;
    assert_eq!(failed(&stale), vec![(claims::HOST_QUOTE, code::HOST_QUOTE)]);
    assert!(
        stale
            .claim(claims::HOST_QUOTE)
            .unwrap()
            .reason
            .contains("nonce"),
        "{stale:?}"
    );

    // A flipped signature byte.
    let bad_sig = w
        .appraise(|h| {
            let last = h.signature.len() - 1;
            h.signature[last] ^= 1;
        })
        .await;
    assert_eq!(
        failed(&bad_sig),
        vec![(claims::HOST_QUOTE, code::HOST_QUOTE)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_serving_another_tenant_fails_the_tenant_pcr() {
    let mut w = world("borealis-labs", &FleetPlan::default().host_firmware).await;
    let r = w.appraise(|_| {}).await;
    assert_eq!(failed(&r), vec![(claims::HOST_TENANT, code::HOST_TENANT)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_booting_unapproved_firmware_fails_the_firmware_pcrs() {
    let mut w = world("acme-ai", "uefi-2.9-patched").await;
    let r = w.appraise(|_| {}).await;
    assert_eq!(
        failed(&r),
        vec![(claims::HOST_FIRMWARE, code::HOST_FIRMWARE)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chip_cannot_borrow_a_host_that_does_not_hold_it() {
    let mut w = world("acme-ai", &FleetPlan::default().host_firmware).await;
    // A second chip, licensed like the first, but never plugged into the
    // host: its operator asks the compliant host to quote for it anyway.
    let pki = DevPki::load(&w._dir.path().join("pki")).unwrap();
    let stranger = SimChip::manufacture(&pki.chip_ca, "CW-100", 2, "1.4.2").unwrap();
    let mut issuer = IssuerClient::new(w._services.issuer_as("admin").await.unwrap());
    w.token = enrol_and_license(&mut issuer, &stranger).await;
    w.chip = stranger;
    let r = w.appraise(|_| {}).await;
    assert_eq!(failed(&r), vec![(claims::HOST_DEVICE, code::HOST_DEVICE)]);

    // A device log edited to name the stranger no longer replays to the PCR.
    let chip_id = w.chip.chip_id.0.to_vec();
    let forged = w.appraise(|h| h.devices = vec![chip_id]).await;
    assert_eq!(
        failed(&forged),
        vec![(claims::HOST_DEVICE, code::HOST_DEVICE)]
    );
    assert!(
        forged
            .claim(claims::HOST_DEVICE)
            .unwrap()
            .reason
            .contains("replay"),
        "{forged:?}"
    );
}
