//! The tables of the store and how keys encode time: a `tracer_id` starts with its creation time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, Table, TableDefinition};

use super::{db_error, StoreError};
use crate::events::document::EventDocument;

/// `tracer_id` → the document as JSON.
pub(super) const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
/// Bookkeeping kept in the same transactions as the documents.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Bytes of keys and values in `DOCUMENTS`: what `max_store_mib` caps.
pub(super) const STORED_BYTES: &str = "stored_bytes";

/// The creation time a `tracer_id` starts with: 16 hex digits of nanoseconds since the epoch.
pub fn tracer_id_time(tracer_id: &str) -> Option<SystemTime> {
    let hex = tracer_id.get(..16)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let nanos = u64::from_str_radix(hex, 16).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// The smallest key of documents created at `time`.
pub(super) fn time_key(time: SystemTime) -> String {
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    format!("{nanos:016x}")
}

pub(super) fn stored_bytes(meta: &Table<&str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(STORED_BYTES)
        .map_err(db_error)?
        .map(|v| v.value())
        .unwrap_or(0))
}

pub(super) fn decode(tracer_id: &str, bytes: &[u8]) -> Result<EventDocument, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unreadable {
        tracer_id: tracer_id.to_string(),
        reason: e.to_string(),
    })
}
