//! HTTP exporter actor on :19704 with upstream's paths: `/metrics` (Prometheus text), `/healthz`,
//! `/readyz`, `/version`, `/tracers` (+ `PUT /tracers/<name>/start|stop`), `PUT /config`,
//! `/containers/json`, the event store's `/v1/events` (+ `/v1/events/<id>/flamegraph.svg`,
//! event_flamegraph.rs), `/v1/profile` (profile.rs), and Grafana's
//! Pyroscope datasource API on the recent profile windows
//! (`/v1/profiles/flamegraph/querier.v1.QuerierService/…`). JSON bodies use upstream's envelope
//! `{"data": …}` / `{"error": {"code", "message"}}`; commands answer 204.

mod config;
mod containers;
mod envelope;
mod event_flamegraph;
mod profile;
mod querier;
mod self_metrics;
mod self_profile;
mod serve;
mod status_page;
pub mod tasks;
mod tracers;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

use envelope::{data, error_response, no_content};

use crate::actors::server_task::ServerTask;
use crate::core::part::{spawn_linked, PartEntry};
use crate::core::{AgentContext, ControlCommand, ControlError, SupervisorMsg};
use crate::events::EventQuery;
use crate::profiling::pyroscope::PyroscopeConfig;
use crate::profiling::recent::RecentProfiles;

pub use self_metrics::{render_self_metrics, ProcessStats};
pub use serve::Limits;

pub enum HttpMsg {
    /// The server task ended on its own: fail so the supervisor restarts us.
    ServerExited(String),
}

pub struct HttpServer;

pub struct HttpArgs {
    pub listen: String,
    pub labels: Vec<(String, String)>,
    pub ctx: Arc<AgentContext>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub procfs_root: std::path::PathBuf,
    /// Shown as upstream's `restart_interval` in `/tracers`.
    pub restart_interval_secs: u64,
    pub limits: serve::Limits,
    /// The querier's `service_name` (profiling.pyroscope.application_name).
    pub application_name: String,
}

pub struct HttpState {
    server: ServerTask,
    /// Keeps the recent profile windows the querier answers from.
    recent: ServerTask,
}

#[derive(Clone)]
struct Shared {
    ctx: Arc<AgentContext>,
    labels: Arc<Vec<(String, String)>>,
    supervisor: ActorRef<SupervisorMsg>,
    procfs_root: Arc<std::path::PathBuf>,
    restart_interval_secs: u64,
    recent: Arc<RecentProfiles>,
    application_name: Arc<String>,
}

impl Shared {
    /// One command to the supervisor, as the control socket sends it.
    async fn control(&self, command: ControlCommand) -> Result<Vec<String>, ControlError> {
        let reply = crate::actors::control::call(&self.supervisor, |reply| {
            SupervisorMsg::Control(command, reply)
        })
        .await;
        reply.and_then(|result| result)
    }
}

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service("http", |part| {
        let args = HttpArgs {
            listen: part.config.http.listen.clone(),
            labels: crate::telemetry::global_labels(&part.config),
            ctx: part.ctx,
            supervisor: part.supervisor,
            procfs_root: part.config.agent.procfs_root.clone(),
            restart_interval_secs: part
                .config
                .supervisor
                .restart_backoff_initial_ms
                .div_ceil(1000),
            limits: serve::Limits::from_config(&part.config.http),
            application_name: part
                .config
                .section::<PyroscopeConfig>()
                .application_name
                .clone(),
        };
        spawn_linked(part.parent, HttpServer, args)
    })
    .essential()
}

impl Actor for HttpServer {
    type Msg = HttpMsg;
    type State = HttpState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {} (http.listen): {e}", args.listen))?;
        tracing::info!(listen = %args.listen, "HTTP server listening");
        let recent = Arc::new(RecentProfiles::default());
        let mut windows = args.ctx.profiles.subscribe();
        let ring = recent.clone();
        let recent_task = ServerTask::spawn(|token| async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    received = windows.recv() => match received {
                        Ok(window) => ring.push(window),
                        // Fell behind: the oldest windows are gone, the newest follow.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        let shared = Shared {
            ctx: args.ctx,
            labels: Arc::new(args.labels),
            supervisor: args.supervisor,
            procfs_root: Arc::new(args.procfs_root),
            restart_interval_secs: args.restart_interval_secs,
            recent,
            application_name: Arc::new(args.application_name),
        };
        let app = router(shared);
        let limits = args.limits;
        let server = ServerTask::spawn(|token| async move {
            serve::serve(listener, app, limits, token).await;
            let _ = myself.cast(HttpMsg::ServerExited("HTTP server stopped".to_string()));
        });
        Ok(HttpState {
            server,
            recent: recent_task,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // In-flight scrapes get a moment to finish.
        state.server.stop("http", Duration::from_secs(2)).await;
        state
            .recent
            .stop("http profile windows", Duration::from_secs(1))
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HttpMsg::ServerExited(reason) => {
                if state.server.is_stopping() {
                    return Ok(());
                }
                Err(reason.into())
            }
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(status_page::page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/tracers", get(tracers::list))
        .route("/tracers/{name}/start", put(tracers::start))
        .route("/tracers/{name}/stop", put(tracers::stop))
        .route("/config", put(config::put))
        .route("/containers/json", get(containers::list))
        .route("/v1/profile", get(profile::profile))
        .route("/debug/pprof/", get(self_profile::index))
        .route("/debug/pprof/profile", get(self_profile::cpu))
        .route("/debug/pprof/{name}", get(self_profile::other))
        .route("/v1/events/watch", axum::routing::post(watch_events))
        .route("/v1/events", get(events))
        .route("/v1/events/{tracer_id}", get(event))
        .route(
            "/v1/events/{tracer_id}/flamegraph.svg",
            get(event_flamegraph::flamegraph),
        )
        .route(
            "/v1/profiles/flamegraph/querier.v1.QuerierService/{method}",
            axum::routing::post(querier::handle),
        )
        .fallback(not_found)
        .with_state(shared)
}

async fn metrics(State(shared): State<Shared>) -> Response {
    shared.ctx.prometheus.run_upkeep();
    let mut body = shared.ctx.prometheus.render();
    body.push_str(&shared.ctx.store.render());
    // Agent self metrics are rendered from live state so they never go stale or leak series.
    // The status board answers even while the supervisor is busy with a reload.
    let status = shared.ctx.status.status();
    body.push_str(&render_self_metrics(
        &shared.labels,
        Some(&status),
        &ProcessStats::read_self(),
    ));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Upstream answers 204 with no body.
async fn healthz() -> Response {
    no_content()
}

async fn readyz(State(shared): State<Shared>) -> Response {
    let status = shared.ctx.status.status();
    if status.ready {
        return no_content();
    }
    let waiting = status.not_ready();
    let waiting = if waiting.is_empty() {
        "the supervisor to start".to_string()
    } else {
        waiting.join(", ")
    };
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: waiting for {waiting}"),
    )
}

/// Upstream's `version.Info` fields we know, plus the running kernel.
async fn version() -> Response {
    data(json!({
        "name": "huatuo-bamai",
        "version": env!("CARGO_PKG_VERSION"),
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        "kernel": sysinfo::System::kernel_version().ok(),
    }))
}

/// While the event store actor restarts, the store is not open.
fn store_unavailable() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the event store is not open (see actor event_store in `huatuo-bamai ctl status`)",
    )
}

/// Runs a store read on a blocking thread (redb reads the file).
async fn read_store<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::events::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
        Err(e) => Err(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("event store read failed: {e}"),
        )),
    }
}

/// Stored events: `?since=&until=` (RFC 3339 or Unix seconds), `tracer_name=`, `container=` (id
/// prefix, hostname or name of a known container), `limit=` (default 100); the newest that
/// match, oldest first.
async fn events(
    State(shared): State<Shared>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let mut query = match EventQuery::from_params(&params) {
        Ok(query) => query,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    if let Some(wanted) = &query.container {
        // Documents carry the id and hostname; a name is resolved through the live set.
        let set = shared.ctx.containers_tx.borrow().clone();
        query.container_ids = set
            .iter()
            .filter(|c| c.name == *wanted)
            .map(|c| c.id.clone())
            .collect();
    }
    let Some(store) = shared.ctx.event_store.get() else {
        return store_unavailable();
    };
    match read_store(move || store.query(&query)).await {
        Ok(documents) => data(documents),
        Err(response) => response,
    }
}

/// One stored event by its `tracer_id`.
async fn event(State(shared): State<Shared>, Path(tracer_id): Path<String>) -> Response {
    let Some(store) = shared.ctx.event_store.get() else {
        return store_unavailable();
    };
    let id = tracer_id.clone();
    match read_store(move || store.get(&id)).await {
        Ok(Some(document)) => data(document),
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            format!("no event with tracer_id {tracer_id}"),
        ),
        Err(response) => response,
    }
}

/// `POST /v1/events/watch` (Server-Sent Events; see watch.rs).
async fn watch_events(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    watch::watch(&shared.ctx.events, &body)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}
