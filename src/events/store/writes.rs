//! Writes and retention: every insert commits before it returns, and both insert and purge
//! delete the oldest documents to stay within the caps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTableMetadata, Table};

use super::schema::{stored_bytes, time_key, tracer_id_time, DOCUMENTS, META, STORED_BYTES};
use super::{db_error, EventStore, EventsConfig, StoreError};
use crate::events::document::EventDocument;

/// How long and how much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    /// Cap on the bytes of stored documents (keys and JSON); the file takes somewhat more.
    pub max_bytes: u64,
}

impl Retention {
    pub fn from_config(config: &EventsConfig) -> Self {
        Self {
            max_age: Duration::from_secs(config.retention_days.saturating_mul(86_400)),
            max_bytes: config.max_store_mib.saturating_mul(1024 * 1024),
        }
    }
}

/// What one `insert` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    pub written: usize,
    /// Ids of documents refused because their `tracer_id` does not start with a time.
    pub rejected: Vec<String>,
    /// Oldest documents deleted to stay within `max_bytes`.
    pub evicted: usize,
    pub documents: u64,
    pub stored_bytes: u64,
}

/// What one `purge` deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Older than `max_age`.
    pub expired: usize,
    /// Over `max_bytes`.
    pub evicted: usize,
    pub documents: u64,
    pub stored_bytes: u64,
}

impl EventStore {
    /// Writes `documents` in one transaction and commits it (fsync): when this returns `Ok`,
    /// they survive any crash. A document with an existing `tracer_id` replaces it. Then the
    /// oldest documents go until the store is within `max_bytes`.
    pub fn insert<'a>(
        &self,
        documents: impl IntoIterator<Item = &'a EventDocument>,
    ) -> Result<InsertOutcome, StoreError> {
        let mut outcome = InsertOutcome::default();
        let txn = self.begin_write()?;
        {
            let mut docs = txn.open_table(DOCUMENTS).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let mut bytes = stored_bytes(&meta)?;
            for document in documents {
                let id = document.tracer_id.as_str();
                if tracer_id_time(id).is_none() {
                    outcome.rejected.push(id.to_string());
                    continue;
                }
                let json = serde_json::to_vec(document).map_err(|e| StoreError::Unreadable {
                    tracer_id: id.to_string(),
                    reason: e.to_string(),
                })?;
                let replaced = docs
                    .insert(id, json.as_slice())
                    .map_err(db_error)?
                    .map(|old| old.value().len() as u64);
                if let Some(old) = replaced {
                    bytes = bytes.saturating_sub(id.len() as u64 + old);
                }
                bytes += (id.len() + json.len()) as u64;
                outcome.written += 1;
            }
            outcome.evicted = evict_oldest(&mut docs, &mut bytes, self.retention.max_bytes)?;
            meta.insert(STORED_BYTES, bytes).map_err(db_error)?;
            outcome.documents = docs.len().map_err(db_error)?;
            outcome.stored_bytes = bytes;
        }
        if outcome.written == 0 {
            txn.abort().map_err(db_error)?;
        } else {
            txn.commit().map_err(db_error)?;
        }
        Ok(outcome)
    }

    /// Deletes documents older than `max_age` (relative to `now`), then the oldest ones while the
    /// store is over `max_bytes`. Commits only when something was deleted.
    pub fn purge(&self, now: SystemTime) -> Result<PurgeOutcome, StoreError> {
        let cutoff = time_key(
            now.checked_sub(self.retention.max_age)
                .unwrap_or(UNIX_EPOCH),
        );
        let mut outcome = PurgeOutcome::default();
        let txn = self.begin_write()?;
        {
            let mut docs = txn.open_table(DOCUMENTS).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let mut bytes = stored_bytes(&meta)?;
            for entry in docs
                .extract_from_if(..cutoff.as_str(), |_, _| true)
                .map_err(db_error)?
            {
                let (key, value) = entry.map_err(db_error)?;
                bytes = bytes.saturating_sub((key.value().len() + value.value().len()) as u64);
                outcome.expired += 1;
            }
            outcome.evicted = evict_oldest(&mut docs, &mut bytes, self.retention.max_bytes)?;
            outcome.documents = docs.len().map_err(db_error)?;
            if outcome.documents == 0 {
                bytes = 0;
            }
            meta.insert(STORED_BYTES, bytes).map_err(db_error)?;
            outcome.stored_bytes = bytes;
        }
        if outcome.expired + outcome.evicted == 0 {
            txn.abort().map_err(db_error)?;
        } else {
            txn.commit().map_err(db_error)?;
        }
        Ok(outcome)
    }
}

/// Deletes the first (oldest) documents while `bytes` is over `max_bytes`; returns how many.
fn evict_oldest(
    docs: &mut Table<&str, &[u8]>,
    bytes: &mut u64,
    max_bytes: u64,
) -> Result<usize, StoreError> {
    if *bytes <= max_bytes {
        return Ok(0);
    }
    let mut evicted = 0;
    // Only the entries taken from the iterator are removed.
    let mut oldest = docs.extract_if(|_, _| true).map_err(db_error)?;
    while *bytes > max_bytes {
        let Some(entry) = oldest.next() else {
            *bytes = 0;
            break;
        };
        let (key, value) = entry.map_err(db_error)?;
        *bytes = bytes.saturating_sub((key.value().len() + value.value().len()) as u64);
        evicted += 1;
    }
    Ok(evicted)
}
