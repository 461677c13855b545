//! The access matrix: every RPC of every Chipward service (`Issuer`,
//! `AuditLog` and `Compliance` on the issuer, `Verifier`), called over
//! mutual TLS against the real servers as every role a certificate can
//! carry, with operators and devices both inside and outside their scope,
//! and as clients the servers must not know: a certificate without a role,
//! a certificate from another CA, no certificate at all.
//!
//! [`MATRIX`] is the policy of the README's "Roles and access" section
//! written out, one cell per caller and RPC. The subject of every call is
//! chip A, licensed to `acme-ai` at `fra-1`, and every request is one that
//! succeeds for a caller allowed to make it: real chips, licenses, signed
//! attestation results, log entries and holds. So an allowed cell must
//! succeed (or, where this world cannot make it succeed, fail for the one
//! business reason its call names), and a refused cell must be refused for
//! its reason: by role, by scope, as unauthenticated, or at the TLS
//! handshake. One world serves the whole matrix; calls that use something
//! up (a renewal, a revocation, a lifted hold) get a fresh one made when the
//! last was used.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::{Grant, TlsCa};
use chipward_device_sim::chip::SimChip;
use chipward_device_sim::clock::ScenarioClock;
use chipward_device_sim::demo::{self, Services};
use chipward_device_sim::fleet::{FleetPlan, SITES, legal_party};
use chipward_device_sim::records::{DEMO_LIST, LISTED_TENANT};
use chipward_issuer::error::CODE_METADATA_KEY;
use chipward_proto::access::Role;
use chipward_proto::audit::{self, AuditEntry, EntryKind, tree_head};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::compliance_client::ComplianceClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{
    AppraiseRequest, BeginHostEnrolmentRequest, ChallengeRequest, CompleteHostEnrolmentRequest,
    ConsistencyProofRequest, EnrolChipRequest, ExportBundleRequest, GetEntriesRequest,
    GetLicenseRequest, GetRevocationListRequest, GetTreeHeadRequest, InclusionProofRequest,
    InfoRequest, IssueLicenseRequest, License, LiftLegalHoldRequest, ListLicensesRequest,
    LoadScreeningListRequest, OverrideScreeningRequest, PlaceLegalHoldRequest, PurgeLicenseRequest,
    RecordResultRequest, RenewLicenseRequest, RevokeLicenseRequest, Site,
};
use chipward_proto::rate_limit::{MAX_BURST, Rate};
use chipward_proto::result::{self, AttestationResult, Status as Verdict};
use chipward_proto::revocation;
use chipward_proto::tls::{self, DEFAULT_SERVER_NAME, TlsFiles};
use chipward_verifier::rate_limits::{Limit, RateLimitSettings};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Status};

/// The tenant chip A is licensed to.
const TENANT: &str = "acme-ai";
/// Another tenant: chip B's.
const OTHER_TENANT: &str = "borealis-labs";
/// The site of every license here.
const SITE: &str = "fra-1";
/// A site no license here names.
const OTHER_SITE: &str = "iad-1";

/// Every RPC of the four services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    EnrolChip,
    IssueLicense,
    GetLicense,
    ListLicenses,
    RenewLicense,
    RevokeLicense,
    GetRevocationList,
    BeginHostEnrolment,
    CompleteHostEnrolment,
    GetTreeHead,
    GetEntries,
    GetInclusionProof,
    GetConsistencyProof,
    ExportBundle,
    RecordResult,
    LoadScreeningList,
    OverrideScreening,
    PlaceLegalHold,
    LiftLegalHold,
    PurgeLicense,
    Challenge,
    Appraise,
    Info,
}

/// Who calls: a certificate of the deployment's TLS CA with a role and
/// scope, or a client the servers must not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Admin,
    Reviewer,
    Auditor,
    Landmark,
    /// The verifier server's own certificate, used as a client.
    Verifier,
    /// Operator of `acme-ai`, every site.
    Operator,
    /// Operator of `acme-ai`, limited to `fra-1`.
    OperatorAtSite,
    /// Operator of `borealis-labs` only.
    OperatorOfOtherTenant,
    /// Operator of `acme-ai`, limited to `iad-1`.
    OperatorAtOtherSite,
    /// Device certificate of chip A.
    Device,
    /// Device certificate of chip B.
    DeviceOfOtherChip,
    /// From the CA, but with no role URI.
    NoRole,
    /// A vendor-admin certificate from another CA.
    OtherCa,
    /// No client certificate at all.
    NoCertificate,
}

/// The matrix's columns, in order.
const CALLERS: [Who; 14] = [
    Who::Admin,
    Who::Reviewer,
    Who::Auditor,
    Who::Landmark,
    Who::Verifier,
    Who::Operator,
    Who::OperatorAtSite,
    Who::OperatorOfOtherTenant,
    Who::OperatorAtOtherSite,
    Who::Device,
    Who::DeviceOfOtherChip,
    Who::NoRole,
    Who::OtherCa,
    Who::NoCertificate,
];

/// What one call must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Allowed: the call succeeds with the right answer (or fails for the
    /// one business reason its call names).
    A,
    /// Allowed, but chip A is outside the caller's scope, so the answer is
    /// empty.
    F,
    /// `PERMISSION_DENIED`: the role may not make this call.
    R,
    /// `PERMISSION_DENIED`: the role may, but chip A (its tenant, site or
    /// id) is outside the certificate's scope.
    S,
    /// `UNAUTHENTICATED`: the certificate is the CA's but grants nothing.
    U,
    /// The TLS handshake fails: the call never reaches a service.
    T,
}

use Want::{A, F, R, S, T, U};

/// The policy. Columns as [`CALLERS`]: vendor-admin, reviewer, auditor,
/// landmark, verifier; operator of acme-ai, of acme-ai at fra-1, of
/// borealis-labs, of acme-ai at iad-1; device chip A, device chip B; no
/// role URI, another CA, no certificate.
#[rustfmt::skip]
const MATRIX: [(Rpc, [Want; 14]); 23] = [
    //                            adm rev aud lmk ver op  op@ opT opS dev dvX bad ca  none
    (Rpc::EnrolChip,             [A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::IssueLicense,          [A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::GetLicense,            [A,  A,  A,  R,  R,  A,  A,  S,  S,  A,  S,  U,  T,  T]),
    (Rpc::ListLicenses,          [A,  A,  A,  R,  R,  A,  A,  S,  F,  A,  S,  U,  T,  T]),
    (Rpc::RenewLicense,          [R,  R,  R,  R,  R,  A,  A,  S,  S,  R,  R,  U,  T,  T]),
    (Rpc::RevokeLicense,         [A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::GetRevocationList,     [A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  U,  T,  T]),
    (Rpc::BeginHostEnrolment,    [A,  R,  R,  R,  R,  A,  A,  A,  A,  R,  R,  U,  T,  T]),
    (Rpc::CompleteHostEnrolment, [A,  R,  R,  R,  R,  A,  A,  A,  A,  R,  R,  U,  T,  T]),
    (Rpc::GetTreeHead,           [A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  U,  T,  T]),
    (Rpc::GetEntries,            [A,  A,  A,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::GetInclusionProof,     [A,  A,  A,  S,  S,  A,  A,  S,  S,  A,  S,  U,  T,  T]),
    (Rpc::GetConsistencyProof,   [A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  U,  T,  T]),
    (Rpc::ExportBundle,          [A,  A,  A,  R,  R,  A,  A,  S,  S,  R,  R,  U,  T,  T]),
    (Rpc::RecordResult,          [R,  R,  R,  R,  R,  A,  A,  S,  S,  R,  R,  U,  T,  T]),
    (Rpc::LoadScreeningList,     [A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::OverrideScreening,     [R,  A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::PlaceLegalHold,        [R,  A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::LiftLegalHold,         [R,  A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::PurgeLicense,          [A,  R,  R,  R,  R,  R,  R,  R,  R,  R,  R,  U,  T,  T]),
    (Rpc::Challenge,             [R,  R,  R,  R,  R,  A,  A,  A,  A,  A,  A,  U,  T,  T]),
    (Rpc::Appraise,              [R,  R,  R,  R,  R,  A,  A,  S,  S,  A,  S,  U,  T,  T]),
    (Rpc::Info,                  [A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  A,  U,  T,  T]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_as_every_caller_gets_what_the_policy_says() {
    let started = Instant::now();
    let mut w = world().await;
    let rpcs: Vec<Rpc> = MATRIX.iter().map(|(rpc, _)| *rpc).collect();
    assert_eq!(rpcs, Rpc::ALL, "the matrix names every RPC once, in order");

    let mut wrong = Vec::new();
    for (rpc, row) in MATRIX {
        for (who, want) in CALLERS.into_iter().zip(row) {
            let got = w.call(rpc, who).await;
            if let Err(why) = judge(want, &got) {
                wrong.push(format!("{rpc:?} as {who:?}: want {want:?}, got {why}"));
            }
        }
    }
    let cells = MATRIX.len() * CALLERS.len();
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells differ from the policy:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "{cells} cells as the policy says in {:?}",
        started.elapsed()
    );
}

/// The key property, asked directly: an operator of another tenant, or of
/// chip A's tenant at another site, can never appraise chip A in its
/// tenant's name, renew its license, read it (one license, a list, the
/// chip's bundle, its log entries) or record its results. Nor does any
/// operator get a site bundle, which holds other tenants' chips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_never_acts_for_another_tenants_chips() {
    let w = world().await;
    let a = w.chip_a.chip_id.to_hex();
    // Enrolled, licensed, appraised.
    let chip_a_entries = w.entries_of_chip_a().await;
    assert_eq!(chip_a_entries.len(), 3, "{chip_a_entries:?}");

    for (who, own_tenant, own_site) in [
        (Who::OperatorOfOtherTenant, OTHER_TENANT, SITE),
        (Who::OperatorAtOtherSite, TENANT, OTHER_SITE),
    ] {
        // Appraisal in chip A's tenant's name at its site: refused.
        let request = w.appraise_request(&w.license_a.token, TENANT, SITE).await;
        let refused = w.verifier(who).appraise(request).await.unwrap_err();
        expect_refusal(&refused, Refusal::Scope, "appraise as acme-ai");

        // In its own name, the result fails: the license names another
        // tenant or site, so no passing result for chip A ever comes out.
        let request = w
            .appraise_request(&w.license_a.token, own_tenant, own_site)
            .await;
        let signed = w.verifier(who).appraise(request).await.unwrap();
        let r = w.verified(&signed.into_inner().result);
        assert_eq!(r.verdict, Verdict::Fail, "{who:?}");
        let claim = if own_tenant == TENANT {
            "site"
        } else {
            "tenant"
        };
        assert!(
            r.claims
                .iter()
                .any(|c| c.claim == claim && c.status == Verdict::Fail),
            "{who:?}: {:?}",
            r.claims
        );

        // Renewal, with the passing result chip A's own operator got: refused.
        let renew = RenewLicenseRequest {
            token_id: w.license_a.token_id.clone(),
            attestation_result: w.result_a.clone(),
            lifetime_seconds: 0,
        };
        let refused = w.issuer(who).renew_license(renew).await.unwrap_err();
        expect_refusal(&refused, Refusal::Scope, "renew");

        // Reading: the license, lists in every form, the chip's bundle.
        let get = GetLicenseRequest {
            token_id: w.license_a.token_id.clone(),
        };
        let refused = w.issuer(who).get_license(get).await.unwrap_err();
        expect_refusal(&refused, Refusal::Scope, "get");
        for (chip_id, tenant) in [
            (String::new(), String::new()),
            (a.clone(), String::new()),
            (a.clone(), own_tenant.to_owned()),
        ] {
            let list = ListLicensesRequest {
                chip_id,
                tenant,
                limit: 0,
            };
            let listed = w.issuer(who).list_licenses(list.clone()).await.unwrap();
            let licenses = listed.into_inner().licenses;
            assert!(
                licenses.iter().all(|l| l.chip_id != a),
                "{who:?} {list:?}: {licenses:?}"
            );
        }
        if own_tenant != TENANT {
            let list = ListLicensesRequest {
                chip_id: String::new(),
                tenant: TENANT.into(),
                limit: 0,
            };
            let refused = w.issuer(who).list_licenses(list).await.unwrap_err();
            expect_refusal(&refused, Refusal::Scope, "list acme-ai");
        }
        let refused = w.audit(who).export_bundle(w.bundle_of_a()).await;
        expect_refusal(&refused.unwrap_err(), Refusal::Scope, "bundle");

        // Recording chip A's result: refused.
        let record = RecordResultRequest {
            attestation_result: w.result_a.clone(),
        };
        let refused = w.audit(who).record_result(record).await.unwrap_err();
        expect_refusal(&refused, Refusal::Scope, "record");

        // Chip A's log entries, one by one: refused.
        for &index in &chip_a_entries {
            let proof = InclusionProofRequest {
                index,
                tree_size: index + 1,
            };
            let refused = w.audit(who).get_inclusion_proof(proof).await.unwrap_err();
            expect_refusal(&refused, Refusal::Scope, "inclusion proof");
        }
    }

    // Site bundles hold every tenant's chips: refused to operators in scope
    // of that site too.
    for who in [Who::Operator, Who::OperatorAtSite] {
        let site = ExportBundleRequest {
            site_id: SITE.into(),
            from: 0,
            to: i64::MAX,
            ..ExportBundleRequest::default()
        };
        let refused = w.audit(who).export_bundle(site).await.unwrap_err();
        expect_refusal(&refused, Refusal::Scope, "site bundle");
    }
}

/// Clients the servers must not know never complete a TLS session with
/// either server: a raw TLS client that presents no certificate, or one
/// from another CA, is sent a fatal alert after its part of the handshake,
/// where a client of the CA is spoken to (even one whose certificate grants
/// nothing: that is refused call by call, as `UNAUTHENTICATED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_of_the_ca_fails_the_handshake() {
    let w = world().await;
    let tls_dir = w.services.tls_dir.clone();
    let other_ca = w.dir.path().join("other-ca");
    for addr in [w.services.issuer, w.services.verifier] {
        let cases = [
            (Who::Auditor, None),
            (Who::NoRole, None),
            (Who::NoCertificate, Some("CertificateRequired")),
            // Its CA has the same name as the deployment's, so the chain
            // is built and its signature fails.
            (Who::OtherCa, Some("DecryptError")),
        ];
        for (who, alert) in cases {
            let identity = match who {
                Who::NoCertificate => None,
                Who::OtherCa => Some(TlsFiles::in_dir(&other_ca, who.certificate())),
                _ => Some(TlsFiles::in_dir(&tls_dir, who.certificate())),
            };
            let ca = tls_dir.join("ca.pem");
            let session =
                tokio::task::spawn_blocking(move || tls_session(addr, &ca, identity.as_ref()));
            let session = session.await.unwrap();
            match alert {
                None => assert_eq!(session, Ok(()), "{who:?} at {addr}"),
                Some(alert) => {
                    let refused = session.unwrap_err();
                    let want = format!("received fatal alert: {alert}");
                    assert!(refused.contains(&want), "{who:?} at {addr}: {refused}");
                }
            }
        }
    }
}

/// Opens a TLS session with the server at `addr` as a client that trusts
/// the CA certificate `ca` and presents `identity` (or no certificate),
/// then waits for the server's first bytes (an HTTP/2 server speaks first).
/// `Ok` when they come; the error that ended the session otherwise.
fn tls_session(addr: SocketAddr, ca: &Path, identity: Option<&TlsFiles>) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    // The provider is ring's, the only one built.
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some(files) => {
            let chain = CertificateDer::pem_file_iter(&files.cert).unwrap();
            let chain = chain.collect::<Result<Vec<_>, _>>().unwrap();
            let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(DEFAULT_SERVER_NAME).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // The client writes nothing after its handshake, so a refusing server
    // closes on a clean alert, never on unread data.
    let mut first = [0u8; 1];
    match rustls::Stream::new(&mut client, &mut socket).read(&mut first) {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("closed without a word".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl Rpc {
    const ALL: [Self; 23] = [
        Self::EnrolChip,
        Self::IssueLicense,
        Self::GetLicense,
        Self::ListLicenses,
        Self::RenewLicense,
        Self::RevokeLicense,
        Self::GetRevocationList,
        Self::BeginHostEnrolment,
        Self::CompleteHostEnrolment,
        Self::GetTreeHead,
        Self::GetEntries,
        Self::GetInclusionProof,
        Self::GetConsistencyProof,
        Self::ExportBundle,
        Self::RecordResult,
        Self::LoadScreeningList,
        Self::OverrideScreening,
        Self::PlaceLegalHold,
        Self::LiftLegalHold,
        Self::PurgeLicense,
        Self::Challenge,
        Self::Appraise,
        Self::Info,
    ];
}

impl Who {
    /// The file stem of this caller's certificate in the TLS folder.
    fn certificate(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Reviewer => "reviewer",
            Self::Auditor => "auditor",
            Self::Landmark => "landmark",
            Self::Verifier => "verifier",
            Self::Operator => "operator-acme",
            Self::OperatorAtSite => "operator-acme-fra",
            Self::OperatorOfOtherTenant => "operator-borealis",
            Self::OperatorAtOtherSite => "operator-acme-iad",
            Self::Device => "device-a",
            Self::DeviceOfOtherChip => "device-b",
            Self::NoRole => "no-role",
            Self::OtherCa => "admin",
            Self::NoCertificate => "",
        }
    }
}

/// What an answer showed.
enum Seen {
    /// What an allowed call should answer.
    Fine,
    /// An empty answer.
    Nothing,
    /// Something else, described.
    Wrong(String),
}

/// Why a call was refused, read from the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Role,
    Scope,
    Certificate,
}

/// The access refusal a status reports: the issuer's `chipward-code`, or
/// the verifier's `CW-AUTH-*` message prefix.
fn refusal(status: &Status) -> Option<Refusal> {
    let stable = status
        .metadata()
        .get(CODE_METADATA_KEY)
        .and_then(|v| v.to_str().ok());
    let message = status.message();
    match stable {
        Some("role_forbidden") => Some(Refusal::Role),
        Some("out_of_scope") => Some(Refusal::Scope),
        Some("unauthenticated") => Some(Refusal::Certificate),
        Some(_) => None,
        None if message.starts_with("CW-AUTH-ROLE: ") => Some(Refusal::Role),
        None if message.starts_with("CW-AUTH-SCOPE: ") => Some(Refusal::Scope),
        None if message.starts_with("CW-AUTH-CERT: ") => Some(Refusal::Certificate),
        None => None,
    }
}

fn expect_refusal(status: &Status, want: Refusal, what: &str) {
    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    assert_eq!(refusal(status), Some(want), "{what}: {status:?}");
}

/// Checks one cell; the error describes what came instead.
fn judge(want: Want, got: &Result<Seen, Status>) -> Result<(), String> {
    let as_wanted = match (want, got) {
        (A, Ok(Seen::Fine)) | (F, Ok(Seen::Nothing)) => true,
        (R, Err(s)) => s.code() == Code::PermissionDenied && refusal(s) == Some(Refusal::Role),
        (S, Err(s)) => s.code() == Code::PermissionDenied && refusal(s) == Some(Refusal::Scope),
        (U, Err(s)) => {
            s.code() == Code::Unauthenticated && refusal(s) == Some(Refusal::Certificate)
        }
        // No service answered: the connection failed under the call (the
        // handshake test shows how).
        (T, Err(s)) => {
            let source = std::error::Error::source(s);
            refusal(s).is_none() && source.is_some_and(|e| e.is::<tonic::transport::Error>())
        }
        _ => false,
    };
    match got {
        _ if as_wanted => Ok(()),
        Ok(Seen::Fine) => Err("an answer".into()),
        Ok(Seen::Nothing) => Err("an empty answer".into()),
        Ok(Seen::Wrong(what)) => Err(format!("a wrong answer: {what}")),
        Err(s) => Err(format!(
            "{:?} ({:?}) {}",
            s.code(),
            refusal(s),
            error_chain(s)
        )),
    }
}

/// A status and every error under it, as one line.
fn error_chain(status: &Status) -> String {
    let mut out = format!("{status}");
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        out.push_str(&format!(": {e}"));
        next = e.source();
    }
    out
}

/// `Fine` when `ok`, otherwise what was seen.
fn seen(ok: bool, what: impl FnOnce() -> String) -> Seen {
    if ok { Seen::Fine } else { Seen::Wrong(what()) }
}

/// An allowed call that this world cannot make succeed must fail with
/// `code` and the issuer's stable code `stable`, never succeed.
fn business<T>(answer: Result<T, Status>, code: Code, stable: &str) -> Result<Seen, Status> {
    match answer {
        Ok(_) => Ok(Seen::Wrong(format!("succeeded; expected {stable}"))),
        Err(s) => {
            let got = s.metadata().get(CODE_METADATA_KEY);
            if s.code() == code && got.and_then(|v| v.to_str().ok()) == Some(stable) {
                Ok(Seen::Fine)
            } else {
                Err(s)
            }
        }
    }
}

/// The servers, chips A and B (both enrolled and licensed), a loaded
/// screening list, a passing result for chip A's license (recorded), and
/// a channel pair (issuer, verifier) per caller.
struct World {
    dir: tempfile::TempDir,
    services: Services,
    issuer_keys: TrustedKeys,
    verifier_keys: TrustedKeys,
    verifier_key_id: String,
    chip_a: SimChip,
    license_a: License,
    /// A passing result for `license_a`, appraised by the operator.
    result_a: Vec<u8>,
    /// The log index of its `appraised` entry.
    result_a_index: u64,
    list_digest: String,
    channels: BTreeMap<Who, (Channel, Channel)>,
    /// A renewal request ready to be made, until one is made.
    renewable: Option<RenewLicenseRequest>,
    /// A license ready to be revoked, until it is.
    revocable: Option<RevokeLicenseRequest>,
    /// A hold ready to be lifted, until it is.
    hold: Option<i64>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan::default();
    // The matrix appraises chip A many times over: its per-chip budget is
    // lifted, or the limit would answer before the role check is seen.
    let unlimited = Rate::new(MAX_BURST, Duration::from_millis(1)).unwrap();
    let limits = RateLimitSettings::default().with_rate(Limit::AppraisePerChip, unlimited);
    let services = demo::start_services_with(
        dir.path(),
        &plan,
        &[],
        &Default::default(),
        &Arc::new(ScenarioClock::wall()),
        &limits,
    )
    .await
    .unwrap();
    let pki = DevPki::load(&dir.path().join("pki")).unwrap();
    let chip_a = SimChip::manufacture(&pki.chip_ca, &plan.model, 1, &plan.firmware).unwrap();
    let chip_b = SimChip::manufacture(&pki.chip_ca, &plan.model, 2, &plan.firmware).unwrap();
    let other_ca = dir.path().join("other-ca");
    issue_certificates(&services.tls_dir, &other_ca, &chip_a, &chip_b);

    let mut channels = BTreeMap::new();
    for who in CALLERS {
        let config = client_tls(&services.tls_dir, &other_ca, who);
        let channel = |addr| tls::connect_lazy(&format!("https://{addr}"), &config).unwrap();
        channels.insert(who, (channel(services.issuer), channel(services.verifier)));
    }
    let token = &pki.issuer_token_key;
    let result_key = &pki.verifier_result_key;
    let mut w = World {
        dir,
        services,
        issuer_keys: TrustedKeys::new().with(token.key_id(), token.public_key()),
        verifier_keys: TrustedKeys::new().with(result_key.key_id(), result_key.public_key()),
        verifier_key_id: result_key.key_id(),
        chip_a,
        license_a: License::default(),
        result_a: Vec::new(),
        result_a_index: 0,
        list_digest: String::new(),
        channels,
        renewable: None,
        revocable: None,
        hold: None,
    };

    // The vendor enrols both chips, loads a screening list and licenses
    // chip A to acme-ai and chip B to borealis-labs, both at fra-1.
    for chip in [&w.chip_a, &chip_b] {
        let enrol = EnrolChipRequest {
            cert_chain: chip.enrolment_chain.clone(),
        };
        w.issuer(Who::Admin).enrol_chip(enrol).await.unwrap();
    }
    let mut admin = w.compliance(Who::Admin);
    let loaded = admin.load_screening_list(list_request()).await.unwrap();
    w.list_digest = loaded.into_inner().digest;
    w.license_a = w.issue(&w.chip_a, TENANT).await;
    w.issue(&chip_b, OTHER_TENANT).await;

    // The operator appraises chip A and records the result.
    w.result_a = w.passing_result(&w.license_a.token).await;
    let record = RecordResultRequest {
        attestation_result: w.result_a.clone(),
    };
    let recorded = w.audit(Who::Operator).record_result(record).await.unwrap();
    w.result_a_index = recorded.into_inner().index;
    w
}

/// Issues, in the TLS folder `tls`, the operators' and devices' client
/// certificates and one without a role URI; makes another CA in `other`
/// with a vendor-admin client.
fn issue_certificates(tls: &Path, other: &Path, chip_a: &SimChip, chip_b: &SimChip) {
    let ca = TlsCa::load(tls).unwrap();
    let operator = |tenant: &str, sites: &[&str]| Grant {
        tenants: vec![tenant.to_owned()],
        sites: sites.iter().map(|s| (*s).to_owned()).collect(),
        ..Grant::role(Role::Operator)
    };
    let device = |chip: &SimChip| Grant {
        chips: vec![chip.chip_id.to_hex()],
        ..Grant::role(Role::Device)
    };
    let grants = [
        (Who::Operator, operator(TENANT, &[])),
        (Who::OperatorAtSite, operator(TENANT, &[SITE])),
        (Who::OperatorOfOtherTenant, operator(OTHER_TENANT, &[])),
        (Who::OperatorAtOtherSite, operator(TENANT, &[OTHER_SITE])),
        (Who::Device, device(chip_a)),
        (Who::DeviceOfOtherChip, device(chip_b)),
    ];
    for (who, grant) in grants {
        ca.issue_client(who.certificate(), &grant).unwrap();
    }
    write_certificate_without_role(tls);

    TlsCa::create(other)
        .unwrap()
        .issue_client(Who::OtherCa.certificate(), &Grant::role(Role::VendorAdmin))
        .unwrap();
}

/// A client certificate the CA signed whose only grant URI is a tenant:
/// `chipward-pki` refuses to make one, so it is made here with rcgen.
fn write_certificate_without_role(tls: &Path) {
    let ca_cert = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, Who::NoRole.certificate());
    let uri = format!("urn:chipward:tenant:{TENANT}");
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into().unwrap())];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let stem = tls.join(Who::NoRole.certificate());
    std::fs::write(stem.with_extension("pem"), cert.pem()).unwrap();
    std::fs::write(stem.with_extension("key"), key.serialize_pem()).unwrap();
}

/// The client TLS configuration of `who`: its certificate from the TLS
/// folder, another CA's certificate, or none; every one trusts the
/// deployment's CA for the servers.
fn client_tls(tls: &Path, other_ca: &Path, who: Who) -> ClientTlsConfig {
    let ca = tls.join("ca.pem");
    match who {
        Who::NoCertificate => ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()))
            .domain_name(DEFAULT_SERVER_NAME),
        Who::OtherCa => {
            let files = TlsFiles {
                ca,
                ..TlsFiles::in_dir(other_ca, who.certificate())
            };
            files.load().unwrap().client(DEFAULT_SERVER_NAME)
        }
        _ => TlsFiles::in_dir(tls, who.certificate())
            .load()
            .unwrap()
            .client(DEFAULT_SERVER_NAME),
    }
}

fn list_request() -> LoadScreeningListRequest {
    LoadScreeningListRequest {
        name: "Demo CSL".into(),
        date: "2026-12-01".into(),
        format: "json".into(),
        content: DEMO_LIST.to_vec(),
    }
}

fn license_request(chip: &SimChip, tenant: &str) -> IssueLicenseRequest {
    let site = &SITES[0];
    assert_eq!(site.id, SITE);
    IssueLicenseRequest {
        chip_id: chip.chip_id.to_hex(),
        tenant: tenant.into(),
        site: Some(Site {
            id: site.id.into(),
            latitude: site.latitude,
            longitude: site.longitude,
            radius_km: 50.0,
        }),
        entitlements: vec!["inference".into()],
        tenant_party: Some(legal_party(tenant)),
        ..IssueLicenseRequest::default()
    }
}

impl World {
    fn issuer(&self, who: Who) -> IssuerClient<Channel> {
        IssuerClient::new(self.channels[&who].0.clone())
    }

    fn audit(&self, who: Who) -> AuditLogClient<Channel> {
        AuditLogClient::new(self.channels[&who].0.clone())
    }

    fn compliance(&self, who: Who) -> ComplianceClient<Channel> {
        ComplianceClient::new(self.channels[&who].0.clone())
    }

    fn verifier(&self, who: Who) -> VerifierClient<Channel> {
        VerifierClient::new(self.channels[&who].1.clone())
    }

    /// A license for `chip`, issued by the vendor administrator.
    async fn issue(&self, chip: &SimChip, tenant: &str) -> License {
        let request = license_request(chip, tenant);
        let issued = self.issuer(Who::Admin).issue_license(request).await;
        issued.unwrap().into_inner().license.unwrap()
    }

    /// Evidence of chip A for `tenant` at `site`, presenting `token`, with
    /// a fresh challenge taken by the operator.
    async fn appraise_request(&self, token: &[u8], tenant: &str, site: &str) -> AppraiseRequest {
        let mut operator = self.verifier(Who::Operator);
        let challenge = operator.challenge(ChallengeRequest {}).await.unwrap();
        let challenge = challenge.into_inner().challenge;
        AppraiseRequest {
            evidence: Some(self.chip_a.attest(&challenge, tenant, site).unwrap()),
            challenge,
            license_token: token.to_vec(),
            tenant: tenant.into(),
            site_id: site.into(),
            host: None,
            landmark_records: Vec::new(),
        }
    }

    /// A passing signed result for chip A presenting `token`, appraised by
    /// the operator.
    async fn passing_result(&self, token: &[u8]) -> Vec<u8> {
        let request = self.appraise_request(token, TENANT, SITE).await;
        let signed = self.verifier(Who::Operator).appraise(request).await;
        let signed = signed.unwrap().into_inner().result;
        assert_eq!(self.verified(&signed).verdict, Verdict::Pass);
        signed
    }

    fn verified(&self, signed: &[u8]) -> AttestationResult {
        let verified = result::verify(signed, &self.verifier_keys).unwrap();
        verified.result().clone()
    }

    /// True when `entry` is the log entry of `result_a`.
    fn is_result_a_entry(&self, entry: &[u8]) -> bool {
        AuditEntry::decode(entry).is_ok_and(|e| {
            e.kind == EntryKind::Appraised
                && e.chip_id == Some(self.chip_a.chip_id)
                && e.tenant == TENANT
                && e.site_id == SITE
        })
    }

    /// The log indices of every entry naming chip A, read by the auditor.
    async fn entries_of_chip_a(&self) -> Vec<u64> {
        let request = GetEntriesRequest { start: 0, limit: 0 };
        let entries = self.audit(Who::Auditor).get_entries(request).await;
        let entries = entries.unwrap().into_inner().entries;
        (0u64..)
            .zip(entries)
            .filter(|(_, bytes)| {
                AuditEntry::decode(bytes).unwrap().chip_id == Some(self.chip_a.chip_id)
            })
            .map(|(index, _)| index)
            .collect()
    }

    fn bundle_of_a(&self) -> ExportBundleRequest {
        ExportBundleRequest {
            chip_id: self.chip_a.chip_id.to_hex(),
            from: 0,
            to: i64::MAX,
            ..ExportBundleRequest::default()
        }
    }

    /// Makes `rpc` as `who`, about chip A.
    async fn call(&mut self, rpc: Rpc, who: Who) -> Result<Seen, Status> {
        match rpc {
            Rpc::EnrolChip
            | Rpc::IssueLicense
            | Rpc::GetLicense
            | Rpc::ListLicenses
            | Rpc::RenewLicense
            | Rpc::RevokeLicense
            | Rpc::GetRevocationList
            | Rpc::BeginHostEnrolment
            | Rpc::CompleteHostEnrolment => self.call_issuer(rpc, who).await,
            Rpc::GetTreeHead
            | Rpc::GetEntries
            | Rpc::GetInclusionProof
            | Rpc::GetConsistencyProof
            | Rpc::ExportBundle
            | Rpc::RecordResult => self.call_audit_log(rpc, who).await,
            Rpc::LoadScreeningList
            | Rpc::OverrideScreening
            | Rpc::PlaceLegalHold
            | Rpc::LiftLegalHold
            | Rpc::PurgeLicense => self.call_compliance(rpc, who).await,
            Rpc::Challenge | Rpc::Appraise | Rpc::Info => self.call_verifier(rpc, who).await,
        }
    }

    async fn call_issuer(&mut self, rpc: Rpc, who: Who) -> Result<Seen, Status> {
        let a = self.chip_a.chip_id.to_hex();
        let mut issuer = self.issuer(who);
        match rpc {
            Rpc::EnrolChip => {
                let request = EnrolChipRequest {
                    cert_chain: self.chip_a.enrolment_chain.clone(),
                };
                let r = issuer.enrol_chip(request).await?.into_inner();
                Ok(seen(r.chip_id == a && !r.newly_enrolled, || {
                    format!("{r:?}")
                }))
            }
            Rpc::IssueLicense => {
                let request = license_request(&self.chip_a, TENANT);
                let l = issuer.issue_license(request).await?.into_inner().license;
                let l = l.unwrap_or_default();
                Ok(seen(l.chip_id == a && l.tenant == TENANT, || {
                    format!("{l:?}")
                }))
            }
            Rpc::GetLicense => {
                let request = GetLicenseRequest {
                    token_id: self.license_a.token_id.clone(),
                };
                let l = issuer.get_license(request).await?.into_inner().license;
                let l = l.unwrap_or_default();
                Ok(seen(l.token == self.license_a.token, || format!("{l:?}")))
            }
            Rpc::ListLicenses => {
                let request = ListLicensesRequest {
                    chip_id: a.clone(),
                    tenant: TENANT.into(),
                    limit: 0,
                };
                let got = issuer.list_licenses(request).await?.into_inner().licenses;
                if got.is_empty() {
                    return Ok(Seen::Nothing);
                }
                let only_a = got.iter().all(|l| l.chip_id == a && l.tenant == TENANT);
                let has_a = got.iter().any(|l| l.token_id == self.license_a.token_id);
                Ok(seen(only_a && has_a, || format!("{got:?}")))
            }
            Rpc::RenewLicense => {
                let request = match self.renewable.take() {
                    Some(request) => request,
                    None => {
                        let l = self.issue(&self.chip_a, TENANT).await;
                        RenewLicenseRequest {
                            attestation_result: self.passing_result(&l.token).await,
                            token_id: l.token_id,
                            lifetime_seconds: 0,
                        }
                    }
                };
                match issuer.renew_license(request.clone()).await {
                    Ok(r) => {
                        let l = r.into_inner().license.unwrap_or_default();
                        Ok(seen(l.renewed_from == request.token_id, || {
                            format!("{l:?}")
                        }))
                    }
                    Err(s) => {
                        self.renewable = Some(request);
                        Err(s)
                    }
                }
            }
            Rpc::RevokeLicense => {
                let request = match self.revocable.take() {
                    Some(request) => request,
                    None => RevokeLicenseRequest {
                        token_id: self.issue(&self.chip_a, TENANT).await.token_id,
                        reason: "access matrix".into(),
                    },
                };
                match issuer.revoke_license(request.clone()).await {
                    Ok(r) => Ok(seen(r.get_ref().revocation_seq > 0, || format!("{r:?}"))),
                    Err(s) => {
                        self.revocable = Some(request);
                        Err(s)
                    }
                }
            }
            Rpc::GetRevocationList => {
                let request = GetRevocationListRequest {};
                let r = issuer.get_revocation_list(request).await?.into_inner();
                let list = revocation::verify(&r.signed_list, &self.issuer_keys);
                Ok(seen(list.is_ok_and(|l| l.seq == r.seq), || {
                    format!("{r:?}")
                }))
            }
            // No TPM roots here: a well-formed begin is refused for that.
            Rpc::BeginHostEnrolment => {
                let request = BeginHostEnrolmentRequest {
                    ek_cert_chain: vec![vec![0x30, 0x00]],
                    ek_public: vec![0; 8],
                    ak_public: vec![0; 8],
                };
                let answer = issuer.begin_host_enrolment(request).await;
                business(answer, Code::FailedPrecondition, "no_tpm_roots")
            }
            // No enrolment is pending here: a well-formed completion of an
            // unknown one is refused for that.
            Rpc::CompleteHostEnrolment => {
                let request = CompleteHostEnrolmentRequest {
                    enrolment_id: "0".repeat(32),
                    credential: vec![0; 32],
                };
                let answer = issuer.complete_host_enrolment(request).await;
                business(answer, Code::NotFound, "host_enrolment_not_found")
            }
            _ => unreachable!("{rpc:?} is not an Issuer RPC"),
        }
    }

    async fn call_audit_log(&mut self, rpc: Rpc, who: Who) -> Result<Seen, Status> {
        let mut log = self.audit(who);
        match rpc {
            Rpc::GetTreeHead => {
                let r = log.get_tree_head(GetTreeHeadRequest {}).await?.into_inner();
                let head = tree_head::verify(&r.signed_tree_head, &self.issuer_keys);
                let ok = head.is_ok_and(|h| h.head().size == r.tree_size)
                    && r.tree_size > self.result_a_index;
                Ok(seen(ok, || format!("{r:?}")))
            }
            Rpc::GetEntries => {
                let request = GetEntriesRequest {
                    start: self.result_a_index,
                    limit: 1,
                };
                let got = log.get_entries(request).await?.into_inner().entries;
                let ok = got.len() == 1 && self.is_result_a_entry(&got[0]);
                Ok(seen(ok, || format!("{} entries", got.len())))
            }
            Rpc::GetInclusionProof => {
                let request = InclusionProofRequest {
                    index: self.result_a_index,
                    tree_size: self.result_a_index + 1,
                };
                let r = log.get_inclusion_proof(request).await?.into_inner();
                let ok = self.is_result_a_entry(&r.entry) && !r.path.is_empty();
                Ok(seen(ok, || format!("{r:?}")))
            }
            Rpc::GetConsistencyProof => {
                let request = ConsistencyProofRequest {
                    old_size: 1,
                    new_size: self.result_a_index + 1,
                };
                let r = log.get_consistency_proof(request).await?.into_inner();
                Ok(seen(!r.path.is_empty(), || format!("{r:?}")))
            }
            Rpc::ExportBundle => {
                let r = log.export_bundle(self.bundle_of_a()).await?.into_inner();
                let report = audit::check_json(&r.export_json, &self.issuer_keys, None);
                let checked = report.is_ok_and(|rep| {
                    rep.entries.len() == r.entries as usize
                        && rep.entries.iter().any(|(i, _)| *i == self.result_a_index)
                });
                Ok(seen(checked, || format!("{} entries", r.entries)))
            }
            Rpc::RecordResult => {
                // A result is recorded once, so each caller records a fresh
                // one for chip A.
                let token = self.license_a.token.clone();
                let request = RecordResultRequest {
                    attestation_result: self.passing_result(&token).await,
                };
                let r = log.record_result(request).await?.into_inner();
                Ok(seen(r.index > self.result_a_index, || format!("{r:?}")))
            }
            _ => unreachable!("{rpc:?} is not an AuditLog RPC"),
        }
    }

    async fn call_compliance(&mut self, rpc: Rpc, who: Who) -> Result<Seen, Status> {
        let mut compliance = self.compliance(who);
        match rpc {
            Rpc::LoadScreeningList => {
                let r = compliance.load_screening_list(list_request()).await?;
                let r = r.into_inner();
                Ok(seen(r.digest == self.list_digest, || format!("{r:?}")))
            }
            Rpc::OverrideScreening => {
                let request = OverrideScreeningRequest {
                    name: LISTED_TENANT.1.into(),
                    list_digest: self.list_digest.clone(),
                    reviewer: "R. Reviewer".into(),
                    reason: "access matrix".into(),
                };
                let r = compliance.override_screening(request).await?.into_inner();
                Ok(seen(r.log_index > self.result_a_index, || format!("{r:?}")))
            }
            Rpc::PlaceLegalHold => {
                let r = compliance.place_legal_hold(hold_request()).await?;
                let r = r.into_inner();
                Ok(seen(r.hold_id > 0, || format!("{r:?}")))
            }
            Rpc::LiftLegalHold => {
                let hold_id = match self.hold.take() {
                    Some(id) => id,
                    None => {
                        let mut reviewer = self.compliance(Who::Reviewer);
                        let placed = reviewer.place_legal_hold(hold_request()).await;
                        placed.unwrap().into_inner().hold_id
                    }
                };
                let request = LiftLegalHoldRequest {
                    hold_id,
                    reason: "access matrix".into(),
                };
                match compliance.lift_legal_hold(request).await {
                    Ok(_) => Ok(Seen::Fine),
                    Err(s) => {
                        self.hold = Some(hold_id);
                        Err(s)
                    }
                }
            }
            // Chip A's license is young: purging it is refused for its
            // retention period.
            Rpc::PurgeLicense => {
                let request = PurgeLicenseRequest {
                    token_id: self.license_a.token_id.clone(),
                };
                let answer = compliance.purge_license(request).await;
                business(answer, Code::FailedPrecondition, "retention_period")
            }
            _ => unreachable!("{rpc:?} is not a Compliance RPC"),
        }
    }

    async fn call_verifier(&mut self, rpc: Rpc, who: Who) -> Result<Seen, Status> {
        let mut verifier = self.verifier(who);
        match rpc {
            Rpc::Challenge => {
                let r = verifier.challenge(ChallengeRequest {}).await?.into_inner();
                Ok(seen(!r.challenge.is_empty(), || format!("{r:?}")))
            }
            Rpc::Appraise => {
                let token = self.license_a.token.clone();
                let request = self.appraise_request(&token, TENANT, SITE).await;
                let signed = verifier.appraise(request).await?.into_inner().result;
                let r = self.verified(&signed);
                let ok = r.verdict == Verdict::Pass && r.chip_id == self.chip_a.chip_id.to_hex();
                Ok(seen(ok, || format!("{r:?}")))
            }
            Rpc::Info => {
                let r = verifier.info(InfoRequest {}).await?.into_inner();
                Ok(seen(r.result_key_id == self.verifier_key_id, || {
                    format!("{r:?}")
                }))
            }
            _ => unreachable!("{rpc:?} is not a Verifier RPC"),
        }
    }
}

/// A hold on a tenant no license here names, so it holds nothing up.
fn hold_request() -> PlaceLegalHoldRequest {
    PlaceLegalHoldRequest {
        chip_id: String::new(),
        tenant: "held-tenant".into(),
        reason: "access matrix".into(),
    }
}
