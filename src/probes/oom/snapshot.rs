//! The memory state an oom document carries, read when the kill is drained: the memory cgroup's
//! files (v2 or v1) and the host's meminfo.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::probes::common::keyed_file::parse_flat_keyed;

/// A v1 limit at or above this is "no limit" (the kernel prints PAGE_COUNTER_MAX in bytes).
const V1_UNLIMITED: u64 = 1 << 62;
/// Host meminfo fields of the snapshot (upstream's list), in bytes.
const MEMINFO_KEYS: [&str; 18] = [
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "SwapCached",
    "Active(anon)",
    "Inactive(anon)",
    "Active(file)",
    "Inactive(file)",
    "Unevictable",
    "Slab",
    "SReclaimable",
    "SUnreclaim",
    "SwapTotal",
    "SwapFree",
    "CommitLimit",
    "Committed_AS",
];

/// A memory cgroup at the moment the event was drained.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MemcgSnapshot {
    /// Path below the hierarchy root, e.g. `/kubepods/burstable/pod<uid>/<id>`.
    pub path: String,
    /// Usage in bytes (`memory.current`, v1 `memory.usage_in_bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Limit in bytes (`memory.max`, v1 `memory.limit_in_bytes`); absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// `memory.stat`.
    pub stat: BTreeMap<String, u64>,
    /// `memory.events` (v2), or v1 `memory.oom_control` plus `failcnt` (`memory.failcnt`).
    pub events: BTreeMap<String, u64>,
    /// Files that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `memory.max` / `memory.limit_in_bytes`: `None` when unlimited.
pub(super) fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    let value: u64 = text
        .parse()
        .map_err(|_| format!("not a byte count: `{text}`"))?;
    Ok((value < V1_UNLIMITED).then_some(value))
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    text.parse()
        .map_err(|_| format!("not a byte count: `{text}`"))
}

fn parse_keyed(text: &str) -> Result<BTreeMap<String, u64>, String> {
    Ok(parse_flat_keyed::<u64>(text)?
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

/// Reads the memory cgroup directory `dir` (v2 files when `memory.current` exists, else v1).
/// What cannot be read is listed in `errors`; the rest is kept.
pub fn memcg_snapshot(dir: &Path, cgroup_path: &str) -> MemcgSnapshot {
    let mut snapshot = MemcgSnapshot {
        path: cgroup_path.to_string(),
        ..Default::default()
    };
    let v2 = dir.join("memory.current").exists();
    let mut read = |file: &str| -> Option<String> {
        match std::fs::read_to_string(dir.join(file)) {
            Ok(text) => Some(text),
            Err(e) => {
                snapshot.errors.push(format!("{file}: {e}"));
                None
            }
        }
    };
    let (current, max, events) = if v2 {
        ("memory.current", "memory.max", "memory.events")
    } else {
        (
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.oom_control",
        )
    };
    let current = read(current).map(|t| (current, parse_bytes(&t)));
    let max = read(max).map(|t| (max, parse_limit(&t)));
    let stat = read("memory.stat").map(|t| ("memory.stat", parse_keyed(&t)));
    let events = read(events).map(|t| (events, parse_keyed(&t)));
    let failcnt = if v2 {
        None
    } else {
        read("memory.failcnt").map(|t| ("memory.failcnt", parse_bytes(&t)))
    };
    let mut bad = |file: &str, reason: String| snapshot.errors.push(format!("{file}: {reason}"));
    match current {
        Some((_, Ok(value))) => snapshot.current = Some(value),
        Some((file, Err(e))) => bad(file, e),
        None => {}
    }
    match max {
        Some((_, Ok(value))) => snapshot.max = value,
        Some((file, Err(e))) => bad(file, e),
        None => {}
    }
    match stat {
        Some((_, Ok(stat))) => snapshot.stat = stat,
        Some((file, Err(e))) => bad(file, e),
        None => {}
    }
    match events {
        Some((_, Ok(events))) => snapshot.events = events,
        Some((file, Err(e))) => bad(file, e),
        None => {}
    }
    match failcnt {
        Some((_, Ok(value))) => {
            snapshot.events.insert("failcnt".to_string(), value);
        }
        Some((file, Err(e))) => bad(file, e),
        None => {}
    }
    snapshot
}

/// Upstream's `host_meminfo` fields of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            if !MEMINFO_KEYS.contains(&key) {
                return None;
            }
            let mut fields = rest.split_whitespace();
            let value: u64 = fields.next()?.parse().ok()?;
            let bytes = match fields.next() {
                Some("kB") => value.checked_mul(1024)?,
                _ => value,
            };
            Some((key.to_string(), bytes))
        })
        .collect()
}
