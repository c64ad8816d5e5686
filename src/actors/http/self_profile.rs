//! `/debug/pprof/*`, as Go services (and upstream's agent) expose it: `profile?seconds=N` is the
//! agent's own on-CPU profile, taken by the profile probe like any process's and encoded as
//! pprof, so `go tool pprof http://NODE:19704/debug/pprof/profile?seconds=10` works unchanged.
//! Go's other profiles (heap, goroutine, …) describe a Go runtime and are answered 404 naming
//! what exists instead.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::envelope::error_response;
use super::{profile, Shared};

/// Go's default length of a CPU profile.
const DEFAULT_SECONDS: &str = "30";

/// `GET /debug/pprof/`: the one profile there is.
pub async fn index() -> Response {
    Html(
        "<html><head><title>/debug/pprof/</title></head><body>\n\
         <p>huatuo-bamai's own profiles, from its profile probe:</p>\n\
         <ul><li><a href=\"profile?seconds=30\">profile</a>: on-CPU profile of the agent \
         (pprof; <code>seconds</code>, <code>frequency</code>)</li></ul>\n\
         <p>Memory: <code>huatuo_bamai_process_resident_memory_bytes</code> on \
         <a href=\"/metrics\">/metrics</a>. Off-CPU: \
         <code>/v1/profile?type=offcpu&amp;pid=&lt;agent pid&gt;</code>.</p>\n\
         </body></html>\n",
    )
    .into_response()
}

/// `GET /debug/pprof/profile?seconds=N[&frequency=HZ]`.
pub async fn cpu(
    State(shared): State<Shared>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let given = match params {
        Ok(Query(params)) => params,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let mut params = Vec::with_capacity(4);
    for (key, value) in given {
        match key.as_str() {
            "seconds" | "frequency" => params.push((key, value)),
            other => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter `{other}` (known: seconds, frequency)"),
                )
            }
        }
    }
    if !params.iter().any(|(k, _)| k == "seconds") {
        params.push(("seconds".into(), DEFAULT_SECONDS.into()));
    }
    params.push(("pid".into(), std::process::id().to_string()));
    params.push(("format".into(), "pprof".into()));
    profile::profile(State(shared), Ok(Query(params))).await
}

/// Any other `/debug/pprof/<name>`.
pub async fn other(Path(name): Path<String>) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!(
            "/debug/pprof/{name}: not available (Go runtime profiles do not apply to this agent); \
             /debug/pprof/profile is its CPU profile"
        ),
    )
}
