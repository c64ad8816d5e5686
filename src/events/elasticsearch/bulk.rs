//! The `_bulk` wire format: the NDJSON body (an `index` action with `_id` = `tracer_id` before
//! each document, so a document sent twice stays one) and the per-item results of the answer.

use serde::Deserialize;

use crate::events::EventDocument;

/// One document ready to send: its `_id` and its JSON (one line, no newline inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkDoc {
    pub id: String,
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("cannot encode document {id}: {source}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("spooled line is not a document with a tracer_id: {0}")]
    BadLine(String),
    #[error("unreadable bulk response: {0}")]
    BadResponse(String),
}

impl BulkDoc {
    pub fn from_document(document: &EventDocument) -> Result<Self, BulkError> {
        let source = serde_json::to_string(document).map_err(|source| BulkError::Encode {
            id: document.tracer_id.clone(),
            source,
        })?;
        Ok(Self {
            id: document.tracer_id.clone(),
            source,
        })
    }

    /// A document read back from the spool: the line is its JSON, `tracer_id` its `_id`.
    pub fn from_line(line: &str) -> Result<Self, BulkError> {
        #[derive(Deserialize)]
        struct IdOnly {
            tracer_id: String,
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match serde_json::from_str::<IdOnly>(line) {
            Ok(doc) if !doc.tracer_id.is_empty() => Ok(Self {
                id: doc.tracer_id,
                source: line.to_string(),
            }),
            Ok(_) => Err(BulkError::BadLine("empty tracer_id".into())),
            Err(e) => Err(BulkError::BadLine(e.to_string())),
        }
    }
}

/// The request body: `{"index":{"_index":…,"_id":…}}` then the document, one line each.
pub fn encode(index: &str, docs: &[BulkDoc]) -> Vec<u8> {
    let index = serde_json::Value::from(index).to_string();
    let size: usize = docs
        .iter()
        .map(|d| d.source.len() + d.id.len() + index.len() + 32)
        .sum();
    let mut body = Vec::with_capacity(size);
    for doc in docs {
        let id = serde_json::Value::from(doc.id.as_str()).to_string();
        body.extend_from_slice(b"{\"index\":{\"_index\":");
        body.extend_from_slice(index.as_bytes());
        body.extend_from_slice(b",\"_id\":");
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(b"}}\n");
        body.extend_from_slice(doc.source.as_bytes());
        body.push(b'\n');
    }
    body
}

/// What to do with a status code, of one item or of a whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    /// 429 (backpressure), 408 and 5xx: send again later.
    Retry,
    /// Any other 4xx: this document (or body) will never be accepted as it is.
    Reject,
}

pub fn classify(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        408 | 429 | 500..=599 => StatusClass::Retry,
        _ => StatusClass::Reject,
    }
}

/// The result of one document of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Indexed,
    Retry {
        status: u16,
        reason: String,
    },
    Rejected {
        status: u16,
        /// The error `type` (`mapper_parsing_exception` …), or `http_<status>`.
        kind: String,
        error: serde_json::Value,
    },
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Reads the answer to a bulk request of `count` documents; items are in request order. An item
/// the answer lacks is to be retried (the `_id` makes a resend harmless).
pub fn parse_response(body: &[u8], count: usize) -> Result<Vec<ItemOutcome>, BulkError> {
    let response: BulkResponse =
        serde_json::from_slice(body).map_err(|e| BulkError::BadResponse(e.to_string()))?;
    if !response.errors && response.items.is_empty() && count > 0 {
        // `filter_path` drops `items` when every item is fine on some servers.
        return Ok(vec![ItemOutcome::Indexed; count]);
    }
    let mut outcomes: Vec<ItemOutcome> = response
        .items
        .iter()
        .take(count)
        .map(|item| {
            // `{"index": {...}}`: the one key is the action.
            let result = item.values().next().cloned().unwrap_or_default();
            item_outcome(&result)
        })
        .collect();
    while outcomes.len() < count {
        outcomes.push(ItemOutcome::Retry {
            status: 0,
            reason: "missing from the bulk response".into(),
        });
    }
    Ok(outcomes)
}

fn item_outcome(result: &serde_json::Value) -> ItemOutcome {
    let status = result
        .get("status")
        .and_then(|s| s.as_u64())
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0);
    let error = result.get("error").cloned().unwrap_or_default();
    let kind = error
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{status}"));
    match (classify(status), status) {
        (StatusClass::Success, _) if error.is_null() => ItemOutcome::Indexed,
        // No status at all: the server's answer is incomplete; try again.
        (_, 0) | (StatusClass::Retry, _) => ItemOutcome::Retry {
            status,
            reason: error_reason(&error).unwrap_or(kind),
        },
        _ => ItemOutcome::Rejected {
            status,
            kind,
            error,
        },
    }
}

/// `error.reason`, or the error itself when it is a plain string.
pub fn error_reason(error: &serde_json::Value) -> Option<String> {
    match error {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => map
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_string)
            .or_else(|| map.get("type").and_then(|t| t.as_str()).map(str::to_string)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: &str) -> BulkDoc {
        BulkDoc {
            id: id.into(),
            source: format!("{{\"tracer_id\":\"{id}\",\"n\":1}}"),
        }
    }

    #[test]
    fn body_is_an_index_action_with_the_id_before_each_document() {
        let body = encode("huatuo_bamai", &[doc("a1"), doc("b\"2")]);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert!(text.ends_with('\n'), "NDJSON ends with a newline");
        assert_eq!(lines.len(), 4);
        let action: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            action,
            json!({"index": {"_index": "huatuo_bamai", "_id": "a1"}})
        );
        assert_eq!(lines[1], doc("a1").source);
        let action: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(action["index"]["_id"], "b\"2", "ids are JSON-escaped");
    }

    #[test]
    fn a_document_round_trips_through_a_spool_line() {
        let document = EventDocument::new("h", "r", "oom", None, 0, json!({"x": "a\nb"}));
        let bulk = BulkDoc::from_document(&document).unwrap();
        assert!(!bulk.source.contains('\n'), "one line");
        assert_eq!(bulk.id, document.tracer_id);
        assert_eq!(
            BulkDoc::from_line(&format!("{}\n", bulk.source)).unwrap(),
            bulk
        );
        assert!(BulkDoc::from_line("{\"x\":1}").is_err());
        assert!(BulkDoc::from_line("{\"tracer_id\":\"\"}").is_err());
        assert!(
            BulkDoc::from_line("{\"tracer_id\":\"abc").is_err(),
            "torn line"
        );
    }

    #[test]
    fn statuses_are_success_retry_or_reject() {
        assert_eq!(classify(200), StatusClass::Success);
        assert_eq!(classify(201), StatusClass::Success);
        assert_eq!(classify(429), StatusClass::Retry);
        assert_eq!(classify(503), StatusClass::Retry);
        assert_eq!(classify(408), StatusClass::Retry);
        assert_eq!(classify(400), StatusClass::Reject);
        assert_eq!(classify(404), StatusClass::Reject);
    }

    #[test]
    fn partial_failures_are_told_apart_per_item() {
        // Shaped like OpenSearch's answer (osmem-server 0.1.6 with filter_path).
        let body = json!({
            "errors": true,
            "items": [
                {"index": {"_id": "a", "status": 201}},
                {"index": {"_id": "b", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
                {"index": {"_id": "c", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}},
                {"index": {"_id": "d", "status": 200}},
                {"index": {"_id": "e", "status": 503, "error": "unavailable"}}
            ]
        });
        let outcomes = parse_response(body.to_string().as_bytes(), 6).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Indexed);
        assert_eq!(
            outcomes[1],
            ItemOutcome::Retry {
                status: 429,
                reason: "queue full".into()
            }
        );
        match &outcomes[2] {
            ItemOutcome::Rejected {
                status,
                kind,
                error,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(kind, "mapper_parsing_exception");
                assert_eq!(error["reason"], "failed to parse");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outcomes[3], ItemOutcome::Indexed);
        assert!(matches!(
            outcomes[4],
            ItemOutcome::Retry { status: 503, .. }
        ));
        assert!(
            matches!(outcomes[5], ItemOutcome::Retry { status: 0, .. }),
            "an item missing from the answer is retried"
        );
    }

    #[test]
    fn an_answer_without_errors_means_every_item_is_indexed() {
        let outcomes = parse_response(br#"{"errors":false}"#, 3).unwrap();
        assert_eq!(outcomes, vec![ItemOutcome::Indexed; 3]);
        let body =
            br#"{"errors":false,"items":[{"index":{"status":201}},{"create":{"status":200}}]}"#;
        assert_eq!(
            parse_response(body, 2).unwrap(),
            vec![ItemOutcome::Indexed; 2]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_response(b"<html>bad gateway</html>", 1).is_err());
        assert!(parse_response(b"", 1).is_err());
        let odd = br#"{"errors":true,"items":[{"index":{"status":"x"}}, 7, {}]}"#;
        let outcomes = parse_response(odd, 3);
        // `7` is not an object: the whole answer is unreadable, so the batch is retried.
        assert!(outcomes.is_err());
        let odd = br#"{"errors":true,"items":[{"index":{"status":"x"}}, {}]}"#;
        let outcomes = parse_response(odd, 2).unwrap();
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, ItemOutcome::Retry { status: 0, .. })));
    }
}
