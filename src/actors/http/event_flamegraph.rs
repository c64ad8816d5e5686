//! `GET /v1/events/<tracer_id>/flamegraph.svg`: the flame graph of a stored AutoTracing
//! document (cpusys, cpuidle), drawn again from its folded stacks or, for documents that carry
//! only upstream's `flamedata`, from that; 404 naming the reason when the event does not exist
//! or holds no flame data.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::envelope::error_response;
use super::{read_store, store_unavailable, Shared};
use crate::events::EventDocument;
use crate::profiling::flamedata::{to_folded_lines, FrameData};
use crate::profiling::flamegraph::svg_from_folded;
use crate::profiling::{OutputFormat, ProfileKind};

/// The folded stack lines a document's `tracer_data` carries (`folded_stacks`, else
/// `flamedata`), or why there are none.
pub fn flame_lines(document: &EventDocument) -> Result<Vec<String>, String> {
    let data = &document.tracer_data;
    if let Some(folded) = data.get("folded_stacks").and_then(Value::as_str) {
        let lines: Vec<String> = folded
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if !lines.is_empty() {
            return Ok(lines);
        }
    }
    if let Some(frames) = data.get("flamedata").filter(|f| !f.is_null()) {
        let frames: Vec<FrameData> = serde_json::from_value(frames.clone())
            .map_err(|e| format!("its flamedata is not upstream's frame list: {e}"))?;
        let lines = to_folded_lines(&frames);
        if !lines.is_empty() {
            return Ok(lines);
        }
    }
    let why = data
        .get("capture_error")
        .and_then(Value::as_str)
        .map(|e| format!(" (its capture did not run: {e})"))
        .unwrap_or_default();
    Err(format!(
        "event {} ({}) carries no flame data{why}",
        document.tracer_id, document.tracer_name
    ))
}

pub async fn flamegraph(State(shared): State<Shared>, Path(tracer_id): Path<String>) -> Response {
    let Some(store) = shared.ctx.event_store.get() else {
        return store_unavailable();
    };
    let id = tracer_id.clone();
    let document = match read_store(move || store.get(&id)).await {
        Ok(Some(document)) => document,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                format!("no event with tracer_id {tracer_id}"),
            )
        }
        Err(response) => return response,
    };
    let lines = match flame_lines(&document) {
        Ok(lines) => lines,
        Err(why) => return error_response(StatusCode::NOT_FOUND, why),
    };
    let title = format!(
        "{} on-CPU flame graph, {} {}",
        document.tracer_name, document.hostname, document.time
    );
    match svg_from_folded(&lines, ProfileKind::Cpu, &title) {
        Ok(svg) => (
            [(header::CONTENT_TYPE, OutputFormat::Svg.content_type())],
            svg,
        )
            .into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(data: Value) -> EventDocument {
        EventDocument::new("h", "r", "cpusys", None, 0, data)
    }

    #[test]
    fn folded_stacks_win_then_flamedata_then_the_reason() {
        let d = document(json!({"folded_stacks": "a;b 3\na;c 1\n", "flamedata": []}));
        assert_eq!(flame_lines(&d), Ok(vec!["a;b 3".into(), "a;c 1".into()]));
        let d = document(json!({"flamedata": [
            {"level": 0, "value": 2, "self": 0, "label": "total"},
            {"level": 1, "value": 2, "self": 0, "label": "app"},
            {"level": 2, "value": 2, "self": 2, "label": "spin"}
        ]}));
        assert_eq!(flame_lines(&d), Ok(vec!["app;spin 2".into()]));
        let d = document(json!({"flamedata": [], "folded_stacks": "",
            "capture_error": "profiling unavailable: no perf_event"}));
        let why = flame_lines(&d).unwrap_err();
        assert!(
            why.contains("no flame data") && why.contains("no perf_event"),
            "{why}"
        );
        let why = flame_lines(&document(json!({"threshold": 1}))).unwrap_err();
        assert!(why.contains("cpusys"), "{why}");
    }
}
