//! The standard gRPC services every Chipward server runs beside its own:
//! `grpc.health.v1.Health` and server reflection (`grpc.reflection.v1` and
//! `v1alpha`), so that generic tools can probe and describe a server.
//!
//! Reflection lists only the services a server names, but describes any
//! symbol of the descriptors compiled into this crate
//! ([`crate::grpc::FILE_DESCRIPTOR_SET`]): asking the issuer for
//! `chipward.v1.Verifier` answers too. It reveals the API's shape, which is
//! public anyway, and nothing else.
//!
//! It also holds how a server stops: on SIGINT or SIGTERM it refuses new
//! connections and lets the calls in flight finish, for at most a grace
//! period ([`Shutdown`], [`serve_within_grace`]), so that a client holding a
//! stream open cannot keep it from stopping.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
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

/// A shutdown request that several futures can await: the server's
/// graceful stop, and the grace period that bounds it.
#[derive(Clone, Debug)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Requested on SIGINT or SIGTERM ([`shutdown_signal`]), awaited in a
    /// task of its own from now on. Call it inside the tokio runtime.
    // Limitation: once the handlers are installed they stay, so a second
    // SIGINT or SIGTERM during the grace period does not cut it short;
    // SIGKILL does.
    pub fn on_signals() -> Self {
        Self::on(shutdown_signal())
    }

    /// Requested when `signal` completes.
    pub fn on(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (request, requested) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = request.send(true);
        });
        Self { requested }
    }

    /// Completes once shutdown is requested (at once if it already was).
    pub async fn requested(mut self) {
        if self.requested.wait_for(|r| *r).await.is_err() {
            // The signal task ended without a request: none will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `serving`, a server that stops gracefully once `shutdown` is
/// requested (it refuses new connections and waits for the calls in
/// flight), and returns what it returns. If calls are still in flight
/// `grace` after the request, it stops waiting: it logs a warning, drops
/// `serving` and returns `Ok`. The connections it leaves are cut when the
/// caller's runtime ends, which is what a server's `main` does next.
pub async fn serve_within_grace<E>(
    serving: impl Future<Output = Result<(), E>>,
    shutdown: Shutdown,
    grace: Duration,
) -> Result<(), E> {
    let mut serving = pin!(serving);
    tokio::select! {
        stopped = &mut serving => return stopped,
        () = shutdown.requested() => {}
    }
    match tokio::time::timeout(grace, serving).await {
        Ok(stopped) => stopped,
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "calls still in flight at the end of the grace period"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::sync::oneshot;

    use super::*;

    /// A shutdown requested when the returned sender is used.
    fn trigger() -> (oneshot::Sender<()>, Shutdown) {
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = Shutdown::on(async move {
            let _ = rx.await;
        });
        (tx, shutdown)
    }

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        use tonic::codegen::tokio_stream::StreamExt as _;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();

        let stream = accepted.next().await.unwrap().unwrap();

        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn returns_what_the_server_returns_when_it_stops_by_itself() {
        let (_tx, shutdown) = trigger();
        let failed = serve_within_grace(async { Err("bind") }, shutdown, Duration::ZERO).await;
        assert_eq!(failed, Err("bind"));
    }

    #[tokio::test]
    async fn waits_for_a_server_that_drains_within_the_grace_period() {
        let (tx, shutdown) = trigger();
        let requested = shutdown.clone().requested();
        let serving = async move {
            requested.await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<(), _>("drained")
        };
        tx.send(()).unwrap();
        let stopped = serve_within_grace(serving, shutdown, Duration::from_secs(30)).await;
        assert_eq!(stopped, Err("drained"));
    }

    #[tokio::test]
    async fn stops_waiting_for_calls_in_flight_after_the_grace_period() {
        let (tx, shutdown) = trigger();
        let serving = std::future::pending::<Result<(), &str>>();
        let started = Instant::now();
        tx.send(()).unwrap();
        let stopped = serve_within_grace(serving, shutdown, Duration::from_millis(200)).await;
        let took = started.elapsed();
        assert_eq!(stopped, Ok(()));
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test]
    async fn a_request_made_before_anyone_waits_is_not_lost() {
        let (tx, shutdown) = trigger();
        tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            shutdown.clone().requested().await;
            shutdown.requested().await;
        });
        assert!(waited.await.is_ok());
    }
}
