//! Upstream HUATUO's documents (tests/fixtures/upstream/documents/<tracer_name>.json) as the
//! shape a real document of ours must have.

use huatuo_bamai::events::document::{shape_mismatches, upstream_omitempty};
use huatuo_bamai::events::EventDocument;

/// Fails unless every field path of upstream's fixture for the document's tracer exists in
/// `document` with the same JSON type (fields upstream omits when empty may be missing).
#[allow(dead_code)]
pub fn assert_upstream_shape(document: &EventDocument) {
    let path = format!(
        "{}/tests/fixtures/upstream/documents/{}.json",
        env!("CARGO_MANIFEST_DIR"),
        document.tracer_name
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let upstream: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ours = serde_json::to_value(document).expect("a document serializes");
    let mismatches = shape_mismatches(&upstream, &ours, &upstream_omitempty(&document.tracer_name));
    assert!(
        mismatches.is_empty(),
        "not upstream's shape ({path}): {mismatches:#?}\n{ours:#}"
    );
    assert_dashboard_fields(document);
}

/// Fields upstream's event dashboard (autotracing-event.json) shows that no current upstream
/// document has either (its earlier v1 documents did), with why; docs/migrating-from-upstream.md
/// lists them.
const DASHBOARD_STALE_FIELDS: &[(&str, &str)] = &[
    (
        "tracer_data.dest_hostname",
        "v1 dropwatch resolved peer hostnames; gone upstream",
    ),
    (
        "tracer_data.src_hostname",
        "v1 dropwatch resolved peer hostnames; gone upstream",
    ),
    (
        "tracer_data.max_ack_backlog",
        "v1 listen-overflow drops (offset kprobes); gone upstream",
    ),
    (
        "container_host_ns",
        "net_rx_latency details panel; upstream's documents name it container_host_namespace",
    ),
    (
        "tracer_data.type",
        "v1 drop type (SYN flood / listen overflow); reserved and empty upstream",
    ),
];

/// Fails unless every document field that upstream's event dashboard shows for this tracer
/// (tests/fixtures/upstream/dashboards/autotracing-event.json, panels of this one tracer) is in
/// `document` (an empty string counts), except [`DASHBOARD_STALE_FIELDS`].
#[allow(dead_code)]
pub fn assert_dashboard_fields(document: &EventDocument) {
    let path = format!(
        "{}/tests/fixtures/upstream/dashboards/autotracing-event.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let panels: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ours = serde_json::to_value(document).expect("a document serializes");
    // Fields upstream omits when empty (the container_* envelope of a host event) may be absent.
    let omitempty = upstream_omitempty(&document.tracer_name);
    let mut missing = Vec::new();
    for panel in &panels {
        // Multi-tracer panels (overview, timeline) filter on one tracer's fields only.
        if panel["tracer_names"] != serde_json::json!([document.tracer_name]) {
            continue;
        }
        for field in panel["fields"].as_array().into_iter().flatten() {
            let Some(field) = field.as_str() else {
                continue;
            };
            if DASHBOARD_STALE_FIELDS.iter().any(|(f, _)| *f == field) || omitempty.contains(&field)
            {
                continue;
            }
            let value = field.split('.').try_fold(&ours, |v, key| v.get(key));
            if value.is_none_or(serde_json::Value::is_null) {
                missing.push(format!("{} / {field}", panel["panel"]));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields upstream's event dashboard shows are missing: {missing:#?}\n{ours:#}"
    );
}
