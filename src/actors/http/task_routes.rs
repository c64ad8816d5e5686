//! Upstream's `/tasks` routes over the task registry (tasks.rs): `POST /tasks` runs a `profiler`
//! task (a capture through the profile probe's capture slot, as `GET /v1/profile`), `GET /tasks`
//! lists, `GET /tasks/<id>` answers status and data, `GET /tasks/<id>/result` the encoded
//! profile, `DELETE /tasks/<id>` stops a task (its capture ends within 100 ms).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::envelope::{data, error_response, no_content};
use super::profile::{format_name, parse_query, resolve_container, title};
use super::tasks::{
    profiler_params, CreateError, TaskEntry, TaskOutput, TaskRegistry, TaskRequest, TaskStatus,
    TasksConfig,
};
use super::Shared;
use crate::core::capture::{CaptureError, CaptureRequest};
use crate::profiling::{encode, OutputFormat};

/// The registry and the running tasks' handles (for DELETE).
pub struct TaskState {
    registry: Mutex<TaskRegistry>,
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl TaskState {
    pub fn new(config: TasksConfig) -> Self {
        Self {
            registry: Mutex::new(TaskRegistry::new(config)),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, TaskRegistry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::AbortHandle>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn result_path(id: &str) -> String {
    format!("/tasks/{id}/result")
}

/// A task as `GET /tasks` and `GET /tasks/<id>` show it.
fn view(t: &TaskEntry, with_data: bool) -> Value {
    let mut v = json!({
        "task_id": t.id,
        "request_id": t.request.request_id,
        "tracer_name": t.request.tracer_name,
        "status": t.status,
    });
    if t.output.is_some() {
        v["result"] = json!(result_path(&t.id));
    }
    if let Some(e) = &t.error {
        v["error"] = json!(e);
    }
    if with_data {
        v["data"] = t.data.clone().unwrap_or(Value::Null);
    }
    v
}

fn not_exist(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"data": {"task_id": id, "status": "not_exist"}})),
    )
        .into_response()
}

/// `POST /tasks`: validates the body (400 naming the field), resolves the capture, registers the
/// task (429 past `tasks.max_concurrent`) and runs it in the background.
pub async fn create(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let request = match TaskRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let params = match profiler_params(&request.trace_args, request.timeout) {
        Ok(p) => p,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut query = match parse_query(&params) {
        Ok(q) => q,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("trace_args: {e}")),
    };
    if let Some(wanted) = &query.container {
        match resolve_container(&shared, wanted) {
            Some(target) => query.request.target = target,
            None => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!("trace_args: --container-id: no single known container is `{wanted}` (id, id prefix, name or hostname)"),
                )
            }
        }
    }
    if shared.ctx.captures.get().is_none() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "tracer_name: the profiler needs the profile probe, which is not running (enable probes.profile)",
        );
    }
    let timeout = request.timeout;
    let id = match shared.tasks.registry().create(request) {
        Ok(id) => id,
        Err(e @ CreateError::TooMany { .. }) => {
            return error_response(StatusCode::TOO_MANY_REQUESTS, e.to_string())
        }
    };
    let (state, task_id) = (shared.tasks.clone(), id.clone());
    let capture = query.request;
    let format = query.format;
    // Holding the running map's lock across the spawn: the task cannot remove its handle before
    // it is inserted.
    let tasks = shared.tasks.clone();
    let mut running = tasks.running();
    let handle = tokio::spawn(async move {
        state.registry().start(&task_id);
        let outcome =
            match tokio::time::timeout(timeout, run_profiler(&shared, capture, format)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("timed out after {} s (timeout)", timeout.as_secs())),
            };
        {
            let mut registry = state.registry();
            match outcome {
                Ok((value, output)) => {
                    let mut value = value;
                    value["result"] = json!(result_path(&task_id));
                    registry.complete(&task_id, value, output);
                }
                Err(e) => registry.finish(&task_id, Err(e)),
            }
        }
        state.running().remove(&task_id);
    });
    running.insert(id.clone(), handle.abort_handle());
    drop(running);
    data(json!({ "task_id": id }))
}

/// One capture, encoded; the task's data is a summary plus, for `json`, upstream's flamedata.
async fn run_profiler(
    shared: &Shared,
    request: CaptureRequest,
    format: OutputFormat,
) -> Result<(Value, TaskOutput), String> {
    let capturer = shared
        .ctx
        .captures
        .get()
        .ok_or("the profile probe stopped (enable probes.profile)")?;
    let reply = capturer.start(request.clone()).map_err(|e| e.to_string())?;
    let profile = match reply.await {
        Ok(Ok(profile)) => profile,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            return Err(CaptureError::Failed(
                "the capture ended without a result (probe stopped?)".into(),
            )
            .to_string())
        }
    };
    let body =
        encode(&profile, format, &title(&profile, &request.target)).map_err(|e| e.to_string())?;
    metrics::counter!("huatuo_bamai_profile_bytes_total", "format" => format_name(format))
        .increment(body.len() as u64);
    let mut value = json!({
        "profile_type": profile.kind.as_str(),
        "target": request.target.to_string(),
        "format": format_name(format),
        "duration_ns": profile.duration_ns,
        "samples": profile.samples.iter().map(|s| s.count).sum::<u64>(),
        "stacks": profile.samples.len(),
        "bytes": body.len(),
    });
    if format == OutputFormat::FlameData {
        value["flamedata"] = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    }
    Ok((
        value,
        TaskOutput {
            content_type: format.content_type(),
            body,
        },
    ))
}

/// `GET /tasks`: every live task and the retained finished ones (without their data).
pub async fn list(State(shared): State<Shared>) -> Response {
    let registry = shared.tasks.registry();
    let tasks: Vec<Value> = registry
        .list()
        .into_iter()
        .map(|t| view(t, false))
        .collect();
    data(tasks)
}

/// `GET /tasks/<id>`: status, error, data and the result link; unknown → 404 `not_exist`.
pub async fn get_one(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    match shared.tasks.registry().get(&id) {
        Some(t) => data(view(t, true)),
        None => not_exist(&id),
    }
}

/// `GET /tasks/<id>/result`: the encoded profile of a completed task (409 before that).
pub async fn result(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let (status, output) = match shared.tasks.registry().get(&id) {
        Some(t) => (t.status, t.output.clone()),
        None => return not_exist(&id),
    };
    match output {
        Some(out) => ([(header::CONTENT_TYPE, out.content_type)], out.body.clone()).into_response(),
        None if status == TaskStatus::Failed => error_response(
            StatusCode::CONFLICT,
            format!("task {id} failed: it has no result (see GET /tasks/{id})"),
        ),
        None => error_response(
            StatusCode::CONFLICT,
            format!("task {id} is not finished yet"),
        ),
    }
}

/// `DELETE /tasks/<id>`: stops a live task (failed, "stopped"); a finished one stays as it
/// ended. 204, or 404 `not_exist`.
pub async fn delete(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    if !shared.tasks.registry().stop(&id) {
        return not_exist(&id);
    }
    if let Some(handle) = shared.tasks.running().remove(&id) {
        // Dropping the capture's reply ends its sampling at the next 100 ms check.
        handle.abort();
    }
    no_content()
}
