//! Host enrolment over real gRPC on a loopback socket, against a real TPM
//! 2.0 (swtpm, provisioned with an EK certificate under its own local CA)
//! driven through tss-esapi. The issuer trusts the local CA's root through
//! the same configuration path the binary uses. Expected values are worked
//! out here from the swtpm's files and the pinned clock, not read back from
//! the service.

#![cfg(test)]

use std::sync::Arc;
use std::time::Duration;

use chipward_certs::chain::TrustAnchor;
use chipward_certs::pem;
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_device_sim::tpm::{AkPublic, HostTpm};
use chipward_issuer::host_enrolment::HostId;
use chipward_issuer::ledger::{Ledger, SqliteLedger};
use chipward_issuer::{Clock, IssuerConfig, IssuerService, IssuerSettings, ManualClock, serve};
use chipward_proto::ak_binding::{self, AkBinding};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    BeginHostEnrolmentRequest, BeginHostEnrolmentResponse, CompleteHostEnrolmentRequest,
    CompleteHostEnrolmentResponse,
};
use chipward_proto::tls::{TlsFiles, connect_as};
use chipward_tests::swtpm::{self, Swtpm};
use ring::digest::{SHA256, digest};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Upper bound for any single call in these tests; a hang fails instead.
const CALL_LIMIT: Duration = Duration::from_secs(20);
/// The default `host_enrolment_ttl_secs`.
const TTL: i64 = 300;
/// The default `ak_binding_lifetime_secs`.
const BINDING_LIFETIME: i64 = 30 * 86_400;
/// swtpm_localca's root certificate (PEM), in the swtpm's folder.
const ROOT_CA: &str = "ca/swtpm-localca-rootca-cert.pem";
/// swtpm_localca's issuing certificate (PEM), the EK certificate's issuer.
const ISSUING_CA: &str = "ca/issuercert.pem";
/// objectAttributes bit: restricted (TPM 2.0 Part 2, table 31).
const RESTRICTED: u32 = 1 << 16;

/// A host: its TPM (the connection, then the swtpm it talks to, so the
/// connection closes first) and what swtpm_setup wrote about it.
struct Host {
    tpm: HostTpm,
    swtpm: Swtpm,
    /// The EK certificate as read from its NV index.
    ek_cert_nv: Vec<u8>,
    /// The EK certificate as swtpm_setup wrote it to a file: DER, no padding.
    ek_cert_file: Vec<u8>,
    /// The local CA's issuing certificate, DER.
    issuing_ca: Vec<u8>,
    ek_public: Vec<u8>,
}

impl Host {
    fn start() -> Self {
        let swtpm = swtpm::start();
        let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
        let ek_cert_nv = tpm.ek_certificate().unwrap();
        let ek_public = tpm.ek_public().unwrap();
        let ek_cert_file = std::fs::read(swtpm.dir.path().join("ek-certs/ek-rsa2048.crt")).unwrap();
        let issuing_pem = std::fs::read_to_string(swtpm.dir.path().join(ISSUING_CA)).unwrap();
        let [issuing_ca] =
            <[Vec<u8>; 1]>::try_from(pem::parse_certificates(&issuing_pem).unwrap()).unwrap();
        Self {
            tpm,
            swtpm,
            ek_cert_nv,
            ek_cert_file,
            issuing_ca,
            ek_public,
        }
    }

    fn chain(&self) -> Vec<Vec<u8>> {
        vec![self.ek_cert_nv.clone(), self.issuing_ca.clone()]
    }

    fn begin_request(&self, ak: &AkPublic) -> BeginHostEnrolmentRequest {
        BeginHostEnrolmentRequest {
            ek_cert_chain: self.chain(),
            ek_public: self.ek_public.clone(),
            ak_public: ak.public.clone(),
        }
    }

    /// TPM2_ActivateCredential with the AK loaded last.
    fn activate(&mut self, begun: &BeginHostEnrolmentResponse) -> Vec<u8> {
        self.tpm
            .activate_credential(&begun.credential_blob, &begun.secret)
            .unwrap()
    }

    /// The host id worked out from the EK certificate file.
    fn expected_host_id(&self) -> String {
        let (_, cert) = X509Certificate::from_der(&self.ek_cert_file).unwrap();
        hex::encode(digest(&SHA256, cert.public_key().raw))
    }
}

struct Issuer {
    _dir: tempfile::TempDir,
    pki: DevPki,
    ledger: Arc<SqliteLedger>,
    clock: Arc<ManualClock>,
    client: IssuerClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), chipward_issuer::ServeError>>,
}

/// An issuer trusting `host`'s local CA root, loaded from its PEM file by
/// the configuration code.
async fn issuer_for(host: &Host) -> Issuer {
    let config = IssuerConfig {
        tpm_roots: vec![host.swtpm.dir.path().join(ROOT_CA)],
        ..IssuerConfig::default()
    };
    issuer_with(config.load_tpm_roots().unwrap()).await
}

async fn issuer_with(tpm_roots: Vec<TrustAnchor>) -> Issuer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("chipward_issuer=debug")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
    let ledger = Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap());
    // Now, to the second: swtpm_setup dated the certificates just now.
    let clock = Arc::new(ManualClock::new(chipward_issuer::SystemClock.now()));
    let service = IssuerService::from_dev_pki(
        IssuerSettings::default(),
        &pki,
        Arc::clone(&ledger) as Arc<dyn Ledger>,
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .unwrap()
    .with_tpm_roots(tpm_roots);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let tls = dir.path().join("tls");
    create_local_deployment(&tls, &[]).unwrap();
    let server_tls = TlsFiles::in_dir(&tls, "issuer").load().unwrap().server();
    let server = tokio::spawn(serve(service, listener, server_tls, async {
        let _ = stopped.await;
    }));
    let url = format!("https://{addr}");
    let client = IssuerClient::new(connect_as(&tls, "admin", &url).await.unwrap());
    Issuer {
        _dir: dir,
        pki,
        ledger,
        clock,
        client,
        stop: Some(stop),
        server,
    }
}

impl Issuer {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn token_keys(&self) -> TrustedKeys {
        let key = &self.pki.issuer_token_key;
        TrustedKeys::new().with(key.key_id(), key.public_key())
    }

    async fn begin(
        &mut self,
        req: BeginHostEnrolmentRequest,
    ) -> Result<BeginHostEnrolmentResponse, Status> {
        bounded(self.client.begin_host_enrolment(req)).await
    }

    async fn complete(
        &mut self,
        enrolment_id: &str,
        credential: Vec<u8>,
    ) -> Result<CompleteHostEnrolmentResponse, Status> {
        let req = CompleteHostEnrolmentRequest {
            enrolment_id: enrolment_id.to_owned(),
            credential,
        };
        bounded(self.client.complete_host_enrolment(req)).await
    }

    /// Begin, activate in the TPM, complete.
    async fn enrol(&mut self, host: &mut Host, ak: &AkPublic) -> CompleteHostEnrolmentResponse {
        let begun = self.begin(host.begin_request(ak)).await.unwrap();
        let credential = host.activate(&begun);
        self.complete(&begun.enrolment_id, credential)
            .await
            .unwrap()
    }

    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(CALL_LIMIT, self.server)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

async fn bounded<T>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    let response = tokio::time::timeout(CALL_LIMIT, call).await.expect("call");
    response.map(tonic::Response::into_inner)
}

fn stable_code(status: &Status) -> &str {
    status
        .metadata()
        .get(chipward_issuer::error::CODE_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Asserts the gRPC code and stable code of a refusal.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, stable: &str) -> Status {
    let status = result.unwrap_err();
    assert_eq!(
        (status.code(), stable_code(&status)),
        (code, stable),
        "{status:?}"
    );
    status
}

/// `public` with objectAttributes bit(s) `clear` cleared: the attributes
/// follow the size, type and nameAlg fields (Part 2, table 185).
fn without_attribute(public: &[u8], clear: u32) -> Vec<u8> {
    let mut out = public.to_vec();
    let attributes = u32::from_be_bytes(out[6..10].try_into().unwrap()) & !clear;
    out[6..10].copy_from_slice(&attributes.to_be_bytes());
    out
}

#[tokio::test]
async fn binds_an_ak_once_the_tpm_activates_the_credential() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();

    // 1. Begin: the credential is sealed for this AK, for five minutes.
    let begun = issuer.begin(host.begin_request(&ak)).await.unwrap();
    assert_eq!(begun.enrolment_id.len(), 32);
    assert_eq!(begun.expires_at, issuer.now() + TTL);

    // 2. The TPM holding the EK and the AK recovers it; completing returns
    //    a binding signed with the token key that names this AK.
    let credential = host.activate(&begun);
    let done = issuer
        .complete(&begun.enrolment_id, credential.clone())
        .await
        .unwrap();
    let now = issuer.now();
    assert_eq!(done.host_id, host.expected_host_id());
    assert_eq!(done.expires_at, now + BINDING_LIFETIME);
    let binding = ak_binding::verify(&done.ak_binding, &issuer.token_keys()).unwrap();
    assert_eq!(
        binding,
        AkBinding {
            host_id: host.expected_host_id(),
            ak_public: hex::encode(&ak.public),
            ak_name: hex::encode(&ak.name),
            ek_cert_sha256: hex::encode(digest(&SHA256, &host.ek_cert_file)),
            tpm_manufacturer: "id:00001014".into(),
            issued_at: now,
            expires_at: now + BINDING_LIFETIME,
        }
    );
    // Another key does not verify it.
    let other = chipward_certs::keys::Ed25519Key::generate().unwrap();
    let others = TrustedKeys::new().with(issuer.pki.issuer_token_key.key_id(), other.public_key());
    assert!(ak_binding::verify(&done.ak_binding, &others).is_err());

    // 3. The ledger holds the AK under the host.
    let id = HostId(hex::decode(&done.host_id).unwrap().try_into().unwrap());
    let keys = issuer.ledger.host_keys(&id).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (&keys[0].ak_name, &keys[0].ak_public, keys[0].enrolled_at),
        (&ak.name, &ak.public, now)
    );

    // 4. The same enrolment cannot be completed twice.
    let again = issuer.complete(&begun.enrolment_id, credential).await;
    refused(again, Code::NotFound, "host_enrolment_not_found");

    // 5. Enrolling the same AK again is no error and records nothing new;
    //    a second AK joins the first.
    issuer.clock.advance(60);
    issuer.enrol(&mut host, &ak).await;
    assert_eq!(issuer.ledger.host_keys(&id).unwrap(), keys);
    let second = host.tpm.create_ak().unwrap();
    let done = issuer.enrol(&mut host, &second).await;
    let binding = ak_binding::verify(&done.ak_binding, &issuer.token_keys()).unwrap();
    assert_eq!(binding.ak_name, hex::encode(&second.name));
    let names: Vec<_> = issuer
        .ledger
        .host_keys(&id)
        .unwrap()
        .into_iter()
        .map(|k| k.ak_name)
        .collect();
    assert_eq!(names, [ak.name.clone(), second.name.clone()]);
    issuer.shut_down().await;
}

#[tokio::test]
async fn a_wrong_credential_is_permission_denied_and_ends_the_enrolment() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();
    let begun = issuer.begin(host.begin_request(&ak)).await.unwrap();
    let credential = host.activate(&begun);

    let mut wrong = credential.clone();
    wrong[0] ^= 1;
    let status = refused(
        issuer.complete(&begun.enrolment_id, wrong).await,
        Code::PermissionDenied,
        "credential_mismatch",
    );
    assert_eq!(status.message(), "credential does not match; begin again");

    // One try per enrolment: the right credential now finds nothing.
    refused(
        issuer.complete(&begun.enrolment_id, credential).await,
        Code::NotFound,
        "host_enrolment_not_found",
    );
    issuer.shut_down().await;
}

#[tokio::test]
async fn an_enrolment_holds_for_its_ttl_and_no_longer() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();

    // At its last second it still completes.
    let begun = issuer.begin(host.begin_request(&ak)).await.unwrap();
    let credential = host.activate(&begun);
    issuer.clock.advance(TTL);
    issuer
        .complete(&begun.enrolment_id, credential)
        .await
        .unwrap();

    // One second later it is refused, and gone.
    let begun = issuer.begin(host.begin_request(&ak)).await.unwrap();
    let credential = host.activate(&begun);
    issuer.clock.advance(TTL + 1);
    let status = refused(
        issuer
            .complete(&begun.enrolment_id, credential.clone())
            .await,
        Code::FailedPrecondition,
        "host_enrolment_expired",
    );
    assert_eq!(
        status.message(),
        format!(
            "host enrolment expired at {}; begin again",
            begun.expires_at
        )
    );
    refused(
        issuer.complete(&begun.enrolment_id, credential).await,
        Code::NotFound,
        "host_enrolment_not_found",
    );
    issuer.shut_down().await;
}

#[tokio::test]
async fn refuses_an_ek_public_area_that_is_not_the_certified_key() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();

    // The AK (an ECC signing key) offered as the EK.
    let mut req = host.begin_request(&ak);
    req.ek_public = ak.public.clone();
    let status = refused(
        issuer.begin(req).await,
        Code::InvalidArgument,
        "ek_unsupported",
    );
    assert_eq!(
        status.message(),
        "ek public area: ecc endorsement keys are unsupported"
    );

    // An RSA EK of the right shape whose modulus is not the certified one.
    let mut req = host.begin_request(&ak);
    let last = req.ek_public.len() - 1;
    req.ek_public[last] ^= 0x01;
    let status = refused(
        issuer.begin(req).await,
        Code::InvalidArgument,
        "ek_mismatch",
    );
    assert_eq!(
        status.message(),
        "ek public area does not match the ek certificate"
    );
    issuer.shut_down().await;
}

#[tokio::test]
async fn refuses_an_ak_that_is_not_restricted() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();

    // Clearing the bit changes the AK's name too; the profile check comes
    // first and says what is wrong.
    let mut req = host.begin_request(&ak);
    req.ak_public = without_attribute(&ak.public, RESTRICTED);
    let status = refused(
        issuer.begin(req).await,
        Code::InvalidArgument,
        "ak_public_invalid",
    );
    assert_eq!(
        status.message(),
        "ak public area: attribute restricted must be set"
    );

    // The EK cannot stand in for the AK: it decrypts and does not sign.
    let mut req = host.begin_request(&ak);
    req.ak_public = host.ek_public.clone();
    let status = refused(
        issuer.begin(req).await,
        Code::InvalidArgument,
        "ak_public_invalid",
    );
    assert_eq!(
        status.message(),
        "ak public area: attribute sign must be set"
    );
    issuer.shut_down().await;
}

#[tokio::test]
async fn refuses_ek_chains_that_do_not_reach_a_configured_root() {
    let mut host = Host::start();
    let ak = host.tpm.create_ak().unwrap();

    // An issuer that trusts another root: the chip vendor's.
    let elsewhere = tempfile::tempdir().unwrap();
    let vendor = DevPki::create(&elsewhere.path().join("pki"), "CW-100").unwrap();
    let mut issuer =
        issuer_with(vec![TrustAnchor::from_der(vendor.root_cert_der()).unwrap()]).await;
    let status = refused(
        issuer.begin(host.begin_request(&ak)).await,
        Code::InvalidArgument,
        "ek_chain_invalid",
    );
    assert!(
        status
            .message()
            .starts_with("ek certificate chain refused: certificate 1 (CN=swtpm-localca)"),
        "{}",
        status.message()
    );
    issuer.shut_down().await;

    // The right root, but the chain stops at the EK certificate.
    let mut issuer = issuer_for(&host).await;
    let mut req = host.begin_request(&ak);
    req.ek_cert_chain.truncate(1);
    let status = refused(
        issuer.begin(req).await,
        Code::InvalidArgument,
        "ek_chain_invalid",
    );
    assert!(
        status
            .message()
            .starts_with("ek certificate chain refused: certificate 0"),
        "{}",
        status.message()
    );

    // A changed byte in the EK certificate's signature breaks it.
    let mut req = host.begin_request(&ak);
    req.ek_cert_chain[0][host.ek_cert_file.len() - 1] ^= 0x01;
    let status = refused(
        issuer.begin(req).await,
        Code::InvalidArgument,
        "ek_chain_invalid",
    );
    assert_eq!(
        status.message(),
        "ek certificate chain refused: certificate 0 (CN=unknown): signature does not verify"
    );
    issuer.shut_down().await;

    // No roots at all is the issuer's state, not the host's fault.
    let mut issuer = issuer_with(Vec::new()).await;
    let status = refused(
        issuer.begin(host.begin_request(&ak)).await,
        Code::FailedPrecondition,
        "no_tpm_roots",
    );
    assert_eq!(status.message(), "no tpm roots configured");
    issuer.shut_down().await;
}

/// Byte strings no field should ever accept.
fn garbage() -> Vec<Vec<u8>> {
    let mut noise = Vec::with_capacity(700);
    let mut x: u32 = 0x9E37_79B9;
    for _ in 0..700 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x.to_be_bytes()[0]);
    }
    vec![
        vec![0x00],
        vec![0xFF; 64],
        vec![0x30, 0x82, 0xFF, 0xFF],
        vec![0x01, 0x00, 0x00, 0x01],
        noise,
    ]
}

#[tokio::test]
async fn garbage_in_any_field_is_invalid_argument() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();

    for bytes in garbage() {
        let mut req = host.begin_request(&ak);
        req.ek_cert_chain[0] = bytes.clone();
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "ek_chain_invalid",
        );

        let mut req = host.begin_request(&ak);
        req.ek_cert_chain.push(bytes.clone());
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "ek_chain_invalid",
        );

        let mut req = host.begin_request(&ak);
        req.ek_public = bytes.clone();
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "ek_public_invalid",
        );

        let mut req = host.begin_request(&ak);
        req.ak_public = bytes.clone();
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "ak_public_invalid",
        );

        let id = String::from_utf8_lossy(&bytes).into_owned();
        refused(
            issuer.complete(&id, vec![1; 32]).await,
            Code::InvalidArgument,
            "invalid_argument",
        );
    }

    // Truncated public areas, one length at a time.
    for len in [1, 2, 10, ak.public.len() - 1] {
        let mut req = host.begin_request(&ak);
        req.ak_public.truncate(len);
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "ak_public_invalid",
        );
        let mut req = host.begin_request(&ak);
        req.ek_public.truncate(len);
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "ek_public_invalid",
        );
    }

    // Missing and oversized fields are refused before anything is parsed.
    let empty = [
        BeginHostEnrolmentRequest::default(),
        BeginHostEnrolmentRequest {
            ek_public: Vec::new(),
            ..host.begin_request(&ak)
        },
        BeginHostEnrolmentRequest {
            ak_public: vec![0; 1027],
            ..host.begin_request(&ak)
        },
        BeginHostEnrolmentRequest {
            ek_cert_chain: vec![host.ek_cert_nv.clone(); 9],
            ..host.begin_request(&ak)
        },
    ];
    for req in empty {
        refused(
            issuer.begin(req).await,
            Code::InvalidArgument,
            "invalid_argument",
        );
    }

    // A well-formed id and a credential of the wrong size or none at all.
    let begun = issuer.begin(host.begin_request(&ak)).await.unwrap();
    for credential in [Vec::new(), vec![0; 65]] {
        refused(
            issuer.complete(&begun.enrolment_id, credential).await,
            Code::InvalidArgument,
            "invalid_argument",
        );
    }
    refused(
        issuer.complete(&"00".repeat(16), vec![1; 32]).await,
        Code::NotFound,
        "host_enrolment_not_found",
    );

    // Refusals that precede the enrolment leave it in place: it completes.
    let credential = host.activate(&begun);
    issuer
        .complete(&begun.enrolment_id, credential)
        .await
        .unwrap();
    issuer.shut_down().await;
}

#[tokio::test]
async fn bounds_the_enrolments_pending_for_one_host() {
    let mut host = Host::start();
    let mut issuer = issuer_for(&host).await;
    let ak = host.tpm.create_ak().unwrap();

    for _ in 0..4 {
        issuer.begin(host.begin_request(&ak)).await.unwrap();
    }
    let status = refused(
        issuer.begin(host.begin_request(&ak)).await,
        Code::ResourceExhausted,
        "host_enrolments_full",
    );
    assert_eq!(
        status.message(),
        "too many enrolments are pending for this host"
    );

    // Once they have expired they make room, and the new one completes.
    issuer.clock.advance(TTL + 1);
    let begun = issuer.begin(host.begin_request(&ak)).await.unwrap();
    let credential = host.activate(&begun);
    issuer
        .complete(&begun.enrolment_id, credential)
        .await
        .unwrap();
    issuer.shut_down().await;
}
