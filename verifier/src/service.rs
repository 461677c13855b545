//! The gRPC edge of the verifier: translates requests to [`Appraiser`]
//! calls and errors to status codes. No appraisal logic lives here.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_server::{
    SERVICE_NAME as VERIFIER_SERVICE, Verifier, VerifierServer,
};
use chipward_proto::grpc::{
    AppraiseRequest, AppraiseResponse, ChallengeRequest, ChallengeResponse,
    GetRevocationListRequest, HostEvidence, InfoRequest, InfoResponse, evidence,
};
use chipward_proto::request_id::request_id;
use chipward_proto::result::Status as Verdict;
use chipward_proto::revocation;
use chipward_proto::serving::{self, ServingError};
use chipward_proto::tpm::pcr::PcrValues;
use thiserror::Error;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use tracing::{debug, info, instrument, warn};

use crate::appraisal::{Appraisal, AppraisalError, AppraisalRequest, Appraiser};
use crate::evidence::tpm::host::HostInput;
use crate::metrics::VerifierMetrics;
use crate::revocation::RevocationCache;

/// Unix milliseconds; the only clock the service reads.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// Errors the verifier returns instead of a result.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request carries no evidence.
    #[error("request carries no evidence")]
    NoEvidence,
    /// The request cannot be appraised.
    #[error(transparent)]
    Appraisal(#[from] AppraisalError),
    /// The host evidence is malformed.
    #[error("host evidence is malformed: {0}")]
    HostEvidence(&'static str),
    /// The appraisal task failed.
    #[error("appraisal task failed")]
    Task,
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match &e {
            ServiceError::NoEvidence | ServiceError::HostEvidence(_) => {
                Self::invalid_argument(e.to_string())
            }
            ServiceError::Appraisal(inner) => {
                let detail = std::error::Error::source(inner)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                Self::invalid_argument(format!("{inner}{detail}"))
            }
            ServiceError::Task => Self::internal("internal error"),
        }
    }
}

/// The gRPC verifier service.
#[derive(Clone)]
pub struct VerifierService {
    appraiser: Arc<Appraiser>,
    clock: Clock,
    metrics: Arc<VerifierMetrics>,
}

impl VerifierService {
    /// A service over `appraiser`, reading time from `clock`, with its
    /// metrics at zero.
    pub fn new(appraiser: Arc<Appraiser>, clock: Clock) -> Self {
        Self {
            appraiser,
            clock,
            metrics: Arc::new(VerifierMetrics::new()),
        }
    }

    /// What this service has counted so far.
    pub fn metrics(&self) -> &Arc<VerifierMetrics> {
        &self.metrics
    }

    /// Appraises one request; the caller counts the outcome.
    async fn appraise_request(&self, req: AppraiseRequest) -> Result<Appraisal, ServiceError> {
        let span = tracing::Span::current();
        span.record("tenant", req.tenant.as_str());
        span.record("site", req.site_id.as_str());
        let Some(evidence::Kind::Spdm(spdm)) = req.evidence.and_then(|e| e.kind) else {
            return Err(ServiceError::NoEvidence);
        };

        let host = req.host.map(host_parts).transpose()?;
        let appraiser = Arc::clone(&self.appraiser);
        let now = (self.clock)();
        let outcome = tokio::task::spawn_blocking(move || {
            let input = AppraisalRequest {
                challenge: &req.challenge,
                transcript: &spdm.transcript,
                cert_chain: &spdm.cert_chain,
                license_token: &req.license_token,
                tenant: &req.tenant,
                site_id: &req.site_id,
                landmark_records: &req.landmark_records,
                host: host.as_ref().map(|(h, pcrs)| HostInput {
                    attest: &h.attest,
                    signature: &h.signature,
                    pcrs,
                    ak_binding: &h.ak_binding,
                    devices: &h.devices,
                }),
            };
            appraiser.appraise(&input, now)
        })
        .await
        .map_err(|_| ServiceError::Task)?;

        let appraisal = outcome.map_err(|e| {
            warn!(error = %e, "appraisal refused");
            ServiceError::from(e)
        })?;
        let result = &appraisal.result;
        span.record("chip", result.chip_id.get(..12).unwrap_or(""));
        span.record("verdict", format!("{:?}", result.verdict));
        if result.verdict == Verdict::Pass {
            debug!("appraisal passed");
        } else {
            let failed: Vec<&str> = result
                .claims
                .iter()
                .filter(|c| c.status != Verdict::Pass)
                .map(|c| c.code.as_str())
                .collect();
            warn!(codes = ?failed, "appraisal did not pass");
        }
        Ok(appraisal)
    }
}

#[tonic::async_trait]
impl Verifier for VerifierService {
    #[instrument(skip_all)]
    async fn challenge(
        &self,
        _: Request<ChallengeRequest>,
    ) -> Result<Response<ChallengeResponse>, Status> {
        let challenge = self.appraiser.challenge((self.clock)());
        self.metrics.challenge_issued();
        Ok(Response::new(ChallengeResponse {
            expires_at_ms: challenge.expires_at_ms,
            challenge: challenge.encode(),
        }))
    }

    #[instrument(skip_all, fields(request_id = %request_id(&request), tenant, site, chip, verdict))]
    async fn appraise(
        &self,
        request: Request<AppraiseRequest>,
    ) -> Result<Response<AppraiseResponse>, Status> {
        let started = Instant::now();
        let outcome = self.appraise_request(request.into_inner()).await;
        match &outcome {
            Ok(appraisal) => self.metrics.appraised(&appraisal.result, started.elapsed()),
            Err(_) => self.metrics.refused(started.elapsed()),
        }
        Ok(Response::new(AppraiseResponse {
            result: outcome?.signed,
        }))
    }

    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let status = self.appraiser.revocations().status((self.clock)());
        Ok(Response::new(InfoResponse {
            result_key_id: self.appraiser.result_key_id(),
            revocation_seq: status.map(|s| s.0).unwrap_or(0),
            revocation_age_ms: status.map(|s| s.1).unwrap_or(-1),
        }))
    }
}

/// Most PCR values a host may report.
const MAX_HOST_PCRS: usize = 64;

/// Splits host evidence into its bytes and a map of its PCR values,
/// refusing more values than a TPM has, values longer than a digest, and
/// duplicates.
fn host_parts(host: HostEvidence) -> Result<(HostEvidence, PcrValues), ServiceError> {
    if host.pcrs.len() > MAX_HOST_PCRS {
        return Err(ServiceError::HostEvidence("too many pcr values"));
    }
    let mut values = PcrValues::default();
    for pcr in &host.pcrs {
        let bank = u16::try_from(pcr.bank)
            .map_err(|_| ServiceError::HostEvidence("pcr bank out of range"))?;
        if pcr.index > 63 || pcr.value.len() > 64 {
            return Err(ServiceError::HostEvidence(
                "pcr index or value out of range",
            ));
        }
        if values
            .0
            .insert((bank, pcr.index), pcr.value.clone())
            .is_some()
        {
            return Err(ServiceError::HostEvidence("pcr reported twice"));
        }
    }
    Ok((host, values))
}

/// Why the verifier's server stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The health or reflection service could not be built.
    #[error("standard grpc services could not be built")]
    Serving(#[source] ServingError),
    /// The gRPC transport failed.
    #[error("grpc server failed")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves `service` on an already bound listener until `shutdown` resolves;
/// requests in flight finish first.
///
/// Beside `chipward.v1.Verifier` the server runs `grpc.health.v1.Health`
/// (`SERVING` for the server and each service) and server reflection, v1
/// and v1alpha.
///
/// Limitation: callers are not authenticated and traffic is not encrypted;
/// bind to loopback (the default) until the service runs behind mTLS.
pub async fn serve(
    service: VerifierService,
    listener: TcpListener,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let server = VerifierServer::new(service)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let names = [VERIFIER_SERVICE];
    let health = serving::health(&names).await;
    let (reflection, reflection_alpha) =
        serving::reflection(&names).map_err(ServeError::Serving)?;
    tonic::transport::Server::builder()
        .add_service(server)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(serving::incoming(listener), shutdown)
        .await
        .map_err(ServeError::Transport)
}

/// Fetches the issuer's revocation list every `interval` until the task is
/// dropped, keeping only lists signed by `issuer_keys`.
pub async fn refresh_revocations(
    endpoint: String,
    issuer_keys: TrustedKeys,
    cache: Arc<RevocationCache>,
    interval: Duration,
    clock: Clock,
) {
    let channel = match tonic::transport::Endpoint::from_shared(endpoint.clone()) {
        Ok(e) => e
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect_lazy(),
        Err(e) => {
            warn!(%endpoint, error = %e, "bad issuer endpoint; revocation claims will stay unknown");
            return;
        }
    };
    let mut client =
        IssuerClient::new(channel).max_decoding_message_size(revocation::MAX_LIST_LEN + 1024);
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        match client
            .get_revocation_list(GetRevocationListRequest {})
            .await
        {
            Ok(resp) => match revocation::verify(&resp.into_inner().signed_list, &issuer_keys) {
                Ok(list) => {
                    let seq = list.seq;
                    if cache.update(list, clock()) {
                        debug!(seq, "revocation list refreshed");
                    }
                }
                Err(e) => warn!(error = %e, "revocation list refused"),
            },
            Err(e) => warn!(code = ?e.code(), "revocation list fetch failed"),
        }
    }
}

/// Logs the listening address; kept here so `main` stays thin.
pub fn announce(addr: std::net::SocketAddr, key_id: &str) {
    info!(%addr, result_key = key_id, "verifier listening");
}
