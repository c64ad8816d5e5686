use super::dead_letters::{metric_reason, DeadLetters};
use super::*;

#[test]
fn metric_reasons_are_label_safe() {
    assert_eq!(
        metric_reason("mapper_parsing_exception"),
        "mapper_parsing_exception"
    );
    assert_eq!(metric_reason("Weird Type!"), "weird_type_");
    assert_eq!(metric_reason(""), "unknown");
}

#[test]
fn a_dead_letter_line_holds_the_document_and_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let letters = DeadLetters {
        path: dir.path().join("sub/dead.ndjson"),
        index: "huatuo_bamai".into(),
    };
    let doc = BulkDoc {
        id: "abc".into(),
        source: r#"{"tracer_id":"abc","x":1}"#.into(),
    };
    let error = serde_json::json!({"type": "mapper_parsing_exception", "reason": "bad"});
    assert!(letters.write(&doc, 400, "mapper_parsing_exception", &error));
    assert!(letters.write(&doc, 400, "x", &serde_json::Value::Null));
    let text = std::fs::read_to_string(&letters.path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["_id"], "abc");
    assert_eq!(lines[0]["status"], 400);
    assert_eq!(lines[0]["error"]["reason"], "bad");
    assert_eq!(lines[0]["document"]["x"], 1);
    assert_eq!(lines[0]["index"], "huatuo_bamai");
}
