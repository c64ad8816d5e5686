//! `PUT /config` as upstream's: `{"config": {"dotted.key": value, …}}`, validated and applied
//! through the same path as `huatuo-bamai ctl set`, all keys or none; 204 when applied. Keys are
//! ours (`probes.dropwatch.max_events_per_second`). The edit is live only: the config file stays
//! the source of truth (a DaemonSet's ConfigMap is read-only), unlike upstream, which rewrites it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::envelope::{control_error, error_response, no_content};
use super::Shared;
use crate::core::ControlCommand;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigRequest {
    config: serde_json::Map<String, serde_json::Value>,
}

/// A JSON value as the TOML text `ctl set` takes; `None` for what TOML cannot hold (null).
fn toml_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => toml::Value::String(s.clone()).to_string().into(),
        other => {
            let value = toml::Value::try_from(other).ok()?;
            Some(value.to_string())
        }
    }
}

pub async fn put(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let request: ConfigRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"config\": {{\"dotted.key\": value}}}}: {e}"),
            )
        }
    };
    if request.config.is_empty() {
        return error_response(StatusCode::BAD_REQUEST, "`config` names no key to set");
    }
    let mut edits = Vec::with_capacity(request.config.len());
    for (key, value) in &request.config {
        let Some(text) = toml_text(value) else {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("{key}: null is not a value; nothing was applied"),
            );
        };
        edits.push((key.clone(), text));
    }
    match shared.control(ControlCommand::SetMany(edits)).await {
        Ok(_) => no_content(),
        Err(e) => control_error(&e),
    }
}
