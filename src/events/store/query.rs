//! Reading documents back: the filter (`EventQuery`, also parsed from `GET /v1/events`) and the
//! newest-first scan over a time range of keys.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::ReadableDatabase;
use serde::Deserialize;

use super::schema::{decode, time_key, DOCUMENTS};
use super::{db_error, EventStore, StoreError};
use crate::events::document::{parse_document_time, parse_rfc3339, EventDocument};

/// Documents a query returns when it names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest limit a query may ask for.
pub const MAX_LIMIT: usize = 10_000;

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

/// Parses a time of a query: RFC 3339 (`2026-11-23T01:02:03Z`, any offset), a document's own
/// `time` layout (`2026-11-23 01:02:03.000 +0000`, so a value can be pasted from a document) or
/// Unix seconds (`1795395723`, `1795395723.5`).
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
    // A Go-layout time has a space before its offset; RFC 3339 errors read better otherwise.
    if text.contains(' ') {
        if let Ok(time) = parse_document_time(text) {
            return Ok(time);
        }
    }
    parse_rfc3339(text).map_err(|e| format!("`{text}` is neither RFC 3339 nor Unix seconds ({e})"))
}

impl EventStore {
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
}
