//! `/tracers` as upstream's: `GET` answers a map of tracer name to `{name, running, hit,
//! restart_interval, flag}` (plus our `kind`, `state`, `restarts`, … as additions), and
//! `PUT /tracers/<name>/start|stop` switches a probe on or off like `ctl enable|disable`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::envelope::{control_error, data, error_response, no_content};
use super::Shared;
use crate::core::status::{ActorStatus, ChildState, PartKind};
use crate::core::ControlCommand;

/// One tracer as upstream's `LifecycleSnapshot`, with our status row flattened in.
#[derive(Serialize)]
struct TracerSnapshot<'a> {
    running: bool,
    /// Upstream counts runs of the tracer: the first start plus every restart.
    hit: u64,
    /// Seconds before a failed tracer is started again (our initial restart backoff).
    restart_interval: u64,
    #[serde(flatten)]
    status: &'a ActorStatus,
}

pub async fn list(State(shared): State<Shared>) -> Response {
    let status = shared.ctx.status.status();
    let snapshots: std::collections::BTreeMap<&str, TracerSnapshot> = status
        .actors
        .iter()
        .map(|actor| {
            let snapshot = TracerSnapshot {
                running: actor.state == ChildState::Running,
                hit: actor.runs(),
                restart_interval: shared.restart_interval_secs,
                status: actor,
            };
            (actor.name.as_str(), snapshot)
        })
        .collect();
    data(snapshots)
}

pub async fn start(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    switch(&shared, name, true).await
}

pub async fn stop(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    switch(&shared, name, false).await
}

/// Upstream answers 409 when the tracer already is in the wanted state, 404 when unknown.
async fn switch(shared: &Shared, name: String, on: bool) -> Response {
    let status = shared.ctx.status.status();
    let Some(actor) = status.actors.iter().find(|a| a.name == name) else {
        let known: Vec<&str> = status.actors.iter().map(|a| a.name.as_str()).collect();
        return error_response(
            StatusCode::NOT_FOUND,
            format!("no tracer named `{name}`; known: {}", known.join(", ")),
        );
    };
    if actor.kind == PartKind::Service && !on {
        return error_response(
            StatusCode::CONFLICT,
            format!("`{name}` is a service of the agent and cannot be stopped"),
        );
    }
    let stopped = matches!(actor.state, ChildState::Disabled);
    if on && !stopped && actor.kind == PartKind::Probe {
        return error_response(
            StatusCode::CONFLICT,
            format!(
                "tracer `{name}` is already running ({})",
                actor.state.as_str()
            ),
        );
    }
    if !on && stopped {
        return error_response(
            StatusCode::CONFLICT,
            format!("tracer `{name}` is not running"),
        );
    }
    let command = if on {
        ControlCommand::Enable(name)
    } else {
        ControlCommand::Disable(name)
    };
    match shared.control(command).await {
        Ok(_) => no_content(),
        Err(e) => control_error(&e),
    }
}
