//! The embedded event store (the default sink, needs no other service): a redb database with one
//! table of JSON documents keyed by `tracer_id`. Ids start with the creation time in hex, so key
//! order is time order: a time range is a key range, and the oldest documents are the first
//! keys. Every write is one committed transaction (crash-safe: what `insert` acknowledged is
//! there after a `kill -9`); retention deletes the oldest documents first, by age and by size.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use super::document::EventDocument;
use schema::{decode, DOCUMENTS, META, STORED_BYTES};

mod config;
mod query;
mod schema;
mod writes;

pub use config::EventsConfig;
pub use query::{parse_instant, EventQuery, DEFAULT_LIMIT, MAX_LIMIT};
pub use schema::tracer_id_time;
pub use writes::{InsertOutcome, PurgeOutcome, Retention};

/// The page cache of the database (redb's default is 1 GiB). It is what the agent's RSS grows
/// by while events are written (measured: +1 MiB per MiB stored until the cap, then flat);
/// writes are appends and queries read a few pages, which the kernel's page cache serves.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the event store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the event store {path} is in use by another process (another agent running?)")]
    InUse { path: PathBuf },
    #[error("event store: {0}")]
    Database(String),
    #[error("stored event {tracer_id} cannot be read: {reason}")]
    Unreadable { tracer_id: String, reason: String },
}

fn db_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(error.into().to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    pub documents: u64,
    pub stored_bytes: u64,
    /// Size of the database file.
    pub file_bytes: u64,
}

pub struct EventStore {
    db: Database,
    path: PathBuf,
    retention: Retention,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.path)
            .field("retention", &self.retention)
            .finish()
    }
}

impl EventStore {
    /// Opens the database at `path`, creating it and its directory when missing. After an unclean
    /// stop redb repairs the file on open (quickly: every commit saves the allocator state).
    pub fn open(path: &Path, retention: Retention) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let shown = path.display().to_string();
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_repair_callback(move |session| {
                if session.progress() == 0.0 {
                    tracing::warn!(path = %shown, "event store was not closed cleanly; repairing it");
                }
            })
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                    path: path.to_path_buf(),
                },
                other => open_error(other.to_string()),
            })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
            retention,
        };
        // Both tables exist from the start, so readers never meet a missing table.
        let txn = store.begin_write()?;
        txn.open_table(DOCUMENTS).map_err(db_error)?;
        txn.open_table(META).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(db_error)?;
        txn.set_quick_repair(true);
        Ok(txn)
    }

    /// The document with this `tracer_id`.
    pub fn get(&self, tracer_id: &str) -> Result<Option<EventDocument>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let docs = txn.open_table(DOCUMENTS).map_err(db_error)?;
        let Some(value) = docs.get(tracer_id).map_err(db_error)? else {
            return Ok(None);
        };
        decode(tracer_id, value.value()).map(Some)
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let docs = txn.open_table(DOCUMENTS).map_err(db_error)?;
        let meta = txn.open_table(META).map_err(db_error)?;
        let stored_bytes = meta
            .get(STORED_BYTES)
            .map_err(db_error)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(StoreStats {
            documents: docs.len().map_err(db_error)?,
            stored_bytes,
            file_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
        })
    }
}

/// Where the running agent keeps its open store for the HTTP API: the event-store actor fills it
/// once the database is open and empties it when it stops. Readers clone the `Arc` and let go of
/// the lock at once.
#[derive(Debug, Default)]
pub struct StoreSlot(RwLock<Option<Arc<EventStore>>>);

impl StoreSlot {
    pub fn get(&self) -> Option<Arc<EventStore>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `store` in the slot (None empties it); returns what was there.
    pub fn replace(&self, store: Option<Arc<EventStore>>) -> Option<Arc<EventStore>> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|e| e.into_inner()),
            store,
        )
    }
}

#[cfg(test)]
mod tests;
