//! The dead-letter file: documents the cluster refused for good, one JSON line each with the
//! error, so nothing refused is lost silently.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use crate::events::elasticsearch::bulk::BulkDoc;

/// Appends refused documents to `dead_letter_file`, one JSON line each with the error.
pub(super) struct DeadLetters {
    pub(super) path: PathBuf,
    pub(super) index: String,
}

impl DeadLetters {
    pub(super) fn write(
        &self,
        doc: &BulkDoc,
        status: u16,
        kind: &str,
        error: &serde_json::Value,
    ) -> bool {
        let head = serde_json::json!({
            "time": crate::events::document::rfc3339(std::time::SystemTime::now()),
            "index": self.index,
            "_id": doc.id,
            "status": status,
            "reason": kind,
            "error": error,
        })
        .to_string();
        // The document is JSON already; splice it in rather than parse it again.
        let line = match serde_json::from_str::<serde_json::Value>(&doc.source) {
            Ok(_) => format!(
                "{},\"document\":{}}}\n",
                head.trim_end_matches('}'),
                doc.source
            ),
            Err(_) => format!(
                "{},\"document_text\":{}}}\n",
                head.trim_end_matches('}'),
                serde_json::Value::from(doc.source.as_str())
            ),
        };
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            })
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    id = %doc.id,
                    "cannot write the dead-letter file; the refused document is lost"
                );
                false
            }
        }
    }
}

/// A label value from an error type: `[a-z0-9_]`, at most 64 characters.
pub(super) fn metric_reason(kind: &str) -> String {
    let reason: String = kind
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if reason.is_empty() {
        "unknown".to_string()
    } else {
        reason
    }
}
