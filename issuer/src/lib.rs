//! The Chipward license issuer: enrols chip identities, mints license tokens
//! bound to a chip, a tenant and a site, renews them against passing
//! attestation results, and revokes them. It also enrols hosts: it binds a
//! host's TPM attestation key to its certified endorsement key by
//! credential activation and signs an AK binding ([`host_enrolment`]).
//! [`screening`] checks a tenant or end user against restricted-party
//! lists (US Consolidated Screening List format), without I/O.
//!
//! [`IssuerService`] implements the `chipward.v1.Issuer` gRPC service over a
//! [`ledger::Ledger`]; [`serve`] runs it on a listener the caller bound, so
//! tests and demos can run it in-process on `127.0.0.1:0`. Everything a peer
//! sends is untrusted; see [`service`] for the order of checks. The thin
//! `chipward-issuer` binary adds configuration, logging and signals.
//! [`metrics`] counts issuance, refusals and latency for the Prometheus
//! endpoint the binary serves when configured.

use std::future::Future;

use chipward_proto::grpc::{self, issuer_server::IssuerServer};
use chipward_proto::serving;
use thiserror::Error;
use tokio::net::TcpListener;
use tonic::transport::Server;

pub mod clock;
pub mod compliance;
pub mod config;
pub mod enrolment;
pub mod error;
pub mod host_enrolment;
pub mod ledger;
pub mod metrics;
mod published_list;
pub mod renewal;
pub mod request;
pub mod screening;
pub mod service;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{IssuerConfig, IssuerSettings};
pub use error::ServiceError;
pub use service::IssuerService;

/// Why the server stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The gRPC transport failed.
    #[error("grpc server failed")]
    Transport(#[source] tonic::transport::Error),
    /// The health or reflection service could not be built.
    #[error("standard grpc services could not be built")]
    Serving(#[source] serving::ServingError),
}

/// Serves `service` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
///
/// Requests larger than the service's `max_message_bytes` are refused
/// before they are decoded. Beside `chipward.v1.Issuer`, `AuditLog` and
/// `Compliance` the server runs `grpc.health.v1.Health` (`SERVING` for the
/// server and each service) and server reflection, v1 and v1alpha.
pub async fn serve(
    service: IssuerService,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let max = service.settings().max_message_bytes;
    let service = std::sync::Arc::new(service);
    let grpc =
        IssuerServer::from_arc(std::sync::Arc::clone(&service)).max_decoding_message_size(max);
    let compliance =
        grpc::compliance_server::ComplianceServer::from_arc(std::sync::Arc::clone(&service))
            .max_decoding_message_size(64 * 1024 * 1024);
    let audit = grpc::audit_log_server::AuditLogServer::from_arc(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(64 * 1024 * 1024);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, max_message_bytes = max, "issuer serving");
        // Limitation: callers are not authenticated; whoever reaches the port
        // can issue and revoke. Off loopback that needs an authenticating
        // proxy in front, so say so loudly.
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "issuer reachable off loopback without client authentication");
        }
    }
    let names = [
        grpc::issuer_server::SERVICE_NAME,
        grpc::audit_log_server::SERVICE_NAME,
        grpc::compliance_server::SERVICE_NAME,
    ];
    let health = serving::health(&names).await;
    let (reflection, reflection_alpha) =
        serving::reflection(&names).map_err(ServeError::Serving)?;
    Server::builder()
        .add_service(grpc)
        .add_service(audit)
        .add_service(compliance)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(serving::incoming(listener), shutdown)
        .await
        .map_err(ServeError::Transport)
}
