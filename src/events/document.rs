//! Upstream HUATUO's document envelope (`hostname, region, uploaded_time, time, container_*,
//! tracer_name, tracer_id, tracer_type, tracer_data`) plus the kernel `cgroup_id`. Grafana
//! dashboards and ES queries depend on these field names.

use serde::{Deserialize, Serialize};

use crate::containers::Container;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TracerType {
    Event,
    Autotracing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDocument {
    pub hostname: String,
    pub region: String,
    /// When the agent stored/uploaded the document (RFC 3339).
    pub uploaded_time: String,
    /// When the kernel event happened (RFC 3339).
    pub time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_host_namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_qos: String,
    /// Kernel cgroup id the event was attributed by (0 when unknown).
    #[serde(default)]
    pub cgroup_id: u64,
    /// One of the documented tracer names (docs/events.md), e.g. `oom`, `hungtask`.
    pub tracer_name: String,
    /// Unique id of this document (also the Elasticsearch `_id`, so replays never duplicate).
    pub tracer_id: String,
    pub tracer_type: TracerType,
    /// The event's own fields.
    pub tracer_data: serde_json::Value,
}

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-25T01:02:03.000000004Z`.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

impl EventDocument {
    /// A new event document for `tracer_name` with a fresh `tracer_id`, attributed to
    /// `container` when known.
    pub fn new(
        hostname: &str,
        region: &str,
        tracer_name: &str,
        container: Option<&Container>,
        cgroup_id: u64,
        tracer_data: serde_json::Value,
    ) -> Self {
        let now = std::time::SystemTime::now();
        let mut document = Self {
            hostname: hostname.to_string(),
            region: region.to_string(),
            uploaded_time: rfc3339(now),
            time: rfc3339(now),
            container_id: String::new(),
            container_hostname: String::new(),
            container_host_namespace: String::new(),
            container_type: String::new(),
            container_qos: String::new(),
            cgroup_id,
            tracer_name: tracer_name.to_string(),
            tracer_id: new_tracer_id(now),
            tracer_type: TracerType::Event,
            tracer_data,
        };
        if let Some(c) = container {
            document.container_id = c.id.clone();
            document.container_hostname = c.hostname.clone();
            document.container_host_namespace = c.namespace.clone();
            document.container_type = c.kind.as_str().to_string();
            document.container_qos = c.qos.as_str().to_string();
        }
        document
    }
}

/// 32 hex characters: time-ordered (ns since epoch) then a per-process sequence, so ids sort by
/// creation time and never repeat within an agent run.
fn new_tracer_id(now: std::time::SystemTime) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 40);
    format!("{nanos:016x}{sequence:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_formats_utc_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_795_395_723, 4);
        assert_eq!(rfc3339(t), "2026-11-23T01:02:03.000000004Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn envelope_has_upstream_field_names() {
        let doc = EventDocument::new("h", "r", "oom", None, 0, serde_json::json!({"pid": 1}));
        let value = serde_json::to_value(&doc).unwrap();
        for key in [
            "hostname",
            "region",
            "uploaded_time",
            "time",
            "tracer_name",
            "tracer_id",
            "tracer_type",
            "tracer_data",
        ] {
            assert!(value.get(key).is_some(), "{key} missing: {value}");
        }
        assert_eq!(value["tracer_type"], "event");
        assert!(
            value.get("container_id").is_none(),
            "empty container fields are omitted"
        );
    }

    #[test]
    fn tracer_ids_are_unique_and_time_ordered() {
        let a = EventDocument::new("h", "r", "x", None, 0, serde_json::Value::Null);
        let b = EventDocument::new("h", "r", "x", None, 0, serde_json::Value::Null);
        assert_ne!(a.tracer_id, b.tracer_id);
        assert_eq!(a.tracer_id.len(), 32);
        assert!(a.tracer_id[..16] <= b.tracer_id[..16]);
    }
}
