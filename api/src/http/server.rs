//! Accepting and serving HTTP/1.1 connections, with the bounds `axum::serve` does not
//! set: at most `max_connections` at once (more wait in the listen queue), and a
//! deadline on each request's headers, which also closes a connection that sends
//! nothing at all. Without them a client that opened sockets and sent half a header, or
//! nothing, held them for ever.
//!
//! hyper's HTTP/1 builder is used directly (what `axum::serve` wraps): its header-read
//! timeout needs a timer, which `axum::serve` does not give it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// A connection's place among `max_connections`. Requests carry it (as an extension) so
/// that a WebSocket, which leaves hyper when it upgrades, keeps its place for as long
/// as the socket lives.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// How connections are bounded (`MAX_CONNECTIONS`, `HEADER_READ_TIMEOUT`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets every open
/// connection finish its request in flight (WebSockets are closed by their handlers'
/// own ends) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    // Each connection holds a clone; `closed` resolves when the last has gone.
    let (open, _) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot(Arc::new(permit));
        let service = TowerToHyperService::new(router.clone().map_request({
            let slot = slot.clone();
            move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(slot.clone());
                request
            }
        }));
        let mut stopping = stopping.clone();
        let open = open.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    open.closed().await;
    Ok(())
}
