//! The accept loop of the HTTP server, bounded: at most `max_connections` open connections (one
//! more is closed at once and counted), and a client that does not send a request's headers
//! within `header_read_timeout` is disconnected, so slow or idle clients cannot hold the
//! server's slots. Each connection is served by hyper's HTTP/1 server with the axum router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Limits {
    /// The limits `[http]` configures.
    pub fn from_config(http: &crate::config::HttpConfig) -> Self {
        Self {
            max_connections: http.max_connections,
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
        }
    }
}

/// How long in-flight requests may finish after the token is cancelled.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `token` is cancelled.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, token: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning; the listener stays.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    metrics::counter!("huatuo_bamai_http_connections_rejected_total").increment(1);
                    drop(stream);
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_read_timeout)
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "HTTP connection ended");
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    // Streams (the SSE watch) never end on their own: give the rest a moment, then close.
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}
