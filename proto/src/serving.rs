//! The standard gRPC services every Chipward server runs beside its own:
//! `grpc.health.v1.Health` and server reflection (`grpc.reflection.v1` and
//! `v1alpha`), so that generic tools can probe and describe a server.
//!
//! Reflection lists only the services a server names, but describes any
//! symbol of the descriptors compiled into this crate
//! ([`crate::grpc::FILE_DESCRIPTOR_SET`]): asking the issuer for
//! `chipward.v1.Verifier` answers too. It reveals the API's shape, which is
//! public anyway, and nothing else.

use thiserror::Error;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::health_reporter;
use tonic_reflection::server::{Builder, v1, v1alpha};

/// The health service's full name.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The v1 reflection service's full name.
pub const REFLECTION_V1_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
/// The v1alpha reflection service's full name.
pub const REFLECTION_V1ALPHA_SERVICE: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Most requests one client connection may have in flight at once (HTTP/2
/// `SETTINGS_MAX_CONCURRENT_STREAMS`); a client that wants more waits for
/// a stream to finish. tonic sets no limit of its own.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Why the standard services could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServingError {
    /// The compiled descriptors do not form a valid set.
    #[error("file descriptor set refused by reflection")]
    Descriptors(#[source] tonic_reflection::server::Error),
}

/// Connections accepted on `listener`, each with Nagle's algorithm off
/// (`TCP_NODELAY`), for `Server::serve_with_incoming`, which does not apply
/// the builder's own `tcp_nodelay`. With Nagle on, the last small frame of
/// each response waits for the client's delayed acknowledgement: about
/// 40 ms added to every call on Linux.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A health service that reports `SERVING` for the whole server (the empty
/// name) and for each of `services` (full names such as
/// `chipward.v1.Verifier`).
pub async fn health(services: &[&str]) -> HealthServer<impl Health> {
    let (reporter, server) = health_reporter();
    for name in services.iter().copied().chain([HEALTH_SERVICE]) {
        reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    server
}

/// Reflection services, v1 and v1alpha, that list `services` plus health and
/// reflection themselves.
pub fn reflection(
    services: &[&str],
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    ServingError,
> {
    let builder = || {
        let mut b = Builder::configure()
            .register_encoded_file_descriptor_set(crate::grpc::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            );
        let names = [
            HEALTH_SERVICE,
            REFLECTION_V1_SERVICE,
            REFLECTION_V1ALPHA_SERVICE,
        ];
        for name in services.iter().copied().chain(names) {
            b = b.with_service_name(name);
        }
        b
    };
    let v1 = builder().build_v1().map_err(ServingError::Descriptors)?;
    let v1alpha = builder()
        .build_v1alpha()
        .map_err(ServingError::Descriptors)?;
    Ok((v1, v1alpha))
}

/// Completes on SIGINT or SIGTERM. If a handler cannot be installed, that
/// signal is simply not awaited.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use tonic::codegen::tokio_stream::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();

        let stream = accepted.next().await.unwrap().unwrap();

        assert!(stream.nodelay().unwrap());
    }
}
