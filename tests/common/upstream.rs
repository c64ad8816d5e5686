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
}
