//! The embedded event store (the default sink, needs no other service): a redb database with one
//! table of JSON documents keyed by `tracer_id`. Ids start with the creation time in hex, so key
//! order is time order: a time range is a key range, and the oldest documents are the first
//! keys. Every write is one committed transaction (crash-safe: what `insert` acknowledged is
//! there after a `kill -9`); retention deletes the oldest documents first, by age and by size.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
};
use serde::Deserialize;

use super::document::{parse_rfc3339, EventDocument};

mod config;
pub use config::EventsConfig;

/// `tracer_id` → the document as JSON.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
/// Bookkeeping kept in the same transactions as the documents.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Bytes of keys and values in `DOCUMENTS`: what `max_store_mib` caps.
const STORED_BYTES: &str = "stored_bytes";
/// The page cache of the database (redb's default is 1 GiB). It is what the agent's RSS grows
/// by while events are written (measured: +1 MiB per MiB stored until the cap, then flat);
/// writes are appends and queries read a few pages, which the kernel's page cache serves.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Documents a query returns when it names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest limit a query may ask for.
pub const MAX_LIMIT: usize = 10_000;

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

/// A filter over stored documents. Every field that is set must match.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// Documents created at or after this instant (the time in their `tracer_id`).
    pub since: Option<SystemTime>,
    /// Documents created at or before this instant.
    pub until: Option<SystemTime>,
    pub tracer_name: Option<String>,
    /// A container id prefix or a container hostname.
    pub container: Option<String>,
    /// Further container ids that match `container` (the callers resolve container names).
    pub container_ids: Vec<String>,
    /// At most this many documents: the newest ones that match.
    pub limit: usize,
}

impl Default for EventQuery {
    fn default() -> Self {
        Self {
            since: None,
            until: None,
            tracer_name: None,
            container: None,
            container_ids: Vec::new(),
            limit: DEFAULT_LIMIT,
        }
    }
}

/// The envelope fields a query filters on, read without decoding `tracer_data`.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    tracer_name: Cow<'a, str>,
    #[serde(borrow, default)]
    container_id: Cow<'a, str>,
    #[serde(borrow, default)]
    container_hostname: Cow<'a, str>,
}

impl EventQuery {
    /// The parameters of `GET /v1/events`: `since`, `until` (RFC 3339 or Unix seconds),
    /// `tracer_name`, `container`, `limit`. An empty value counts as absent. Errors name the
    /// parameter.
    pub fn from_params(params: &[(String, String)]) -> Result<Self, String> {
        const KNOWN: [&str; 5] = ["since", "until", "tracer_name", "container", "limit"];
        let mut query = EventQuery::default();
        let mut seen = Vec::new();
        for (name, value) in params {
            if !KNOWN.contains(&name.as_str()) {
                return Err(format!(
                    "unknown parameter `{name}`; known: {}",
                    KNOWN.join(", ")
                ));
            }
            if seen.contains(name) {
                return Err(format!("parameter `{name}` is given more than once"));
            }
            seen.push(name.clone());
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let bad = |reason: String| format!("bad `{name}`: {reason}");
            match name.as_str() {
                "since" => query.since = Some(parse_instant(value).map_err(bad)?),
                "until" => query.until = Some(parse_instant(value).map_err(bad)?),
                "tracer_name" => query.tracer_name = Some(value.to_string()),
                "container" => query.container = Some(value.to_string()),
                _ => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad(format!("`{value}` is not a number from 1 to {MAX_LIMIT}"))
                        })?;
                }
            }
        }
        if let (Some(since), Some(until)) = (query.since, query.until) {
            if since > until {
                return Err("`since` is later than `until`".to_string());
            }
        }
        Ok(query)
    }

    fn matches(&self, head: &Head) -> bool {
        if let Some(name) = &self.tracer_name {
            if head.tracer_name != name.as_str() {
                return false;
            }
        }
        match &self.container {
            None => true,
            Some(wanted) => {
                let id = head.container_id.as_ref();
                (!id.is_empty() && id.starts_with(wanted.as_str()))
                    || (!head.container_hostname.is_empty() && head.container_hostname == *wanted)
                    || self.container_ids.iter().any(|c| c == id)
            }
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
fn time_key(time: SystemTime) -> String {
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    format!("{nanos:016x}")
}

/// Parses a time of a query: RFC 3339 (`2026-11-23T01:02:03Z`, any offset) or Unix seconds
/// (`1795395723`, `1795395723.5`).
pub fn parse_instant(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(whole) && (fraction.is_empty() || digits(fraction)) && !text.ends_with('.') {
        let secs: u64 = whole
            .parse()
            .map_err(|_| format!("`{text}` is out of range"))?;
        let nanos = format!("{fraction:0<9}")[..9].parse::<u32>().unwrap_or(0);
        return UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .ok_or_else(|| format!("`{text}` is out of range"));
    }
    parse_rfc3339(text).map_err(|e| format!("`{text}` is neither RFC 3339 nor Unix seconds ({e})"))
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

    /// The document with this `tracer_id`.
    pub fn get(&self, tracer_id: &str) -> Result<Option<EventDocument>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let docs = txn.open_table(DOCUMENTS).map_err(db_error)?;
        let Some(value) = docs.get(tracer_id).map_err(db_error)? else {
            return Ok(None);
        };
        decode(tracer_id, value.value()).map(Some)
    }

    /// The newest `query.limit` documents that match, oldest first. A stored document that
    /// cannot be decoded is skipped with a warning.
    pub fn query(&self, query: &EventQuery) -> Result<Vec<EventDocument>, StoreError> {
        let limit = query.limit.clamp(1, MAX_LIMIT);
        let lower = query.since.map(time_key).unwrap_or_default();
        // `until` is inclusive to the nanosecond: stop before the next nanosecond's first key.
        let upper = query
            .until
            .map(|t| time_key(t.checked_add(Duration::from_nanos(1)).unwrap_or(t)));
        if upper.as_ref().is_some_and(|upper| *upper <= lower) {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(db_error)?;
        let docs = txn.open_table(DOCUMENTS).map_err(db_error)?;
        let range = match &upper {
            Some(upper) => docs.range(lower.as_str()..upper.as_str()),
            None => docs.range(lower.as_str()..),
        }
        .map_err(db_error)?;
        let mut found = Vec::new();
        for entry in range.rev() {
            let (key, value) = entry.map_err(db_error)?;
            let (id, bytes) = (key.value(), value.value());
            let head: Head = match serde_json::from_slice(bytes) {
                Ok(head) => head,
                Err(e) => {
                    tracing::warn!(tracer_id = id, error = %e, "skipping unreadable stored event");
                    continue;
                }
            };
            if !query.matches(&head) {
                continue;
            }
            match decode(id, bytes) {
                Ok(document) => found.push(document),
                Err(e) => tracing::warn!("skipping {e}"),
            }
            if found.len() >= limit {
                break;
            }
        }
        found.reverse();
        Ok(found)
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

fn stored_bytes(meta: &Table<&str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(STORED_BYTES)
        .map_err(db_error)?
        .map(|v| v.value())
        .unwrap_or(0))
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

fn decode(tracer_id: &str, bytes: &[u8]) -> Result<EventDocument, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unreadable {
        tracer_id: tracer_id.to_string(),
        reason: e.to_string(),
    })
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
