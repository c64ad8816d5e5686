//! Upstream HUATUO's document envelope (`hostname, region, uploaded_time, time, tracer_time,
//! container_*, tracer_name, tracer_id, tracer_type, tracer_data`) plus the kernel `cgroup_id`.
//! Grafana dashboards and ES queries depend on these field names and on their JSON types: `time`
//! and `tracer_time` are upstream's Go layout `2006-01-02 15:04:05.000 -0700` (ES maps that as
//! text, not as a date: an RFC 3339 `time` in a shared index would conflict), `uploaded_time` is
//! RFC 3339. Upstream's `record_id` is not emitted: upstream adds it only to its SQLite index
//! columns (`DocumentStoreMapper.Fields`), never to the JSON it sends to Elasticsearch.

use serde::{Deserialize, Serialize};

use crate::containers::Container;

pub use super::time::{go_time, parse_document_time, parse_rfc3339, rfc3339};
pub use super::upstream_shape::{shape_mismatches, upstream_omitempty};

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
    /// When the agent made the document (RFC 3339, UTC).
    pub uploaded_time: String,
    /// When the kernel event happened, upstream's layout (see [`go_time`]). Documents stored by
    /// earlier versions hold RFC 3339 here; [`parse_document_time`] reads both.
    pub time: String,
    /// Same instant as `time` (upstream writes both from one value). Absent from documents
    /// stored by earlier versions (and left out when served again).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tracer_time: String,
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
            time: go_time(now),
            tracer_time: go_time(now),
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

    /// Sets `time` and `tracer_time` to when the kernel event happened.
    pub fn set_event_time(&mut self, time: std::time::SystemTime) {
        self.time = go_time(time);
        self.tracer_time = self.time.clone();
    }

    /// When the event happened: `tracer_time`, else `time` (documents of earlier versions),
    /// in either layout.
    pub fn event_time(&self) -> Result<std::time::SystemTime, String> {
        let text = if self.tracer_time.is_empty() {
            &self.time
        } else {
            &self.tracer_time
        };
        parse_document_time(text)
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
            "tracer_time",
            "tracer_name",
            "tracer_id",
            "tracer_type",
            "tracer_data",
        ] {
            assert!(value.get(key).is_some(), "{key} missing: {value}");
        }
        assert_eq!(value["tracer_type"], "event");
        assert_eq!(value["time"], value["tracer_time"]);
        assert!(
            value.get("record_id").is_none(),
            "upstream's ES documents have none"
        );
        assert!(
            value.get("container_id").is_none(),
            "empty container fields are omitted"
        );
    }

    #[test]
    fn shapes_compare_paths_and_types() {
        let upstream = serde_json::json!({
            "a": 1, "b": "x", "c": {"d": [{"e": true}], "f": null}, "g": {"h": 1}
        });
        let same = serde_json::json!({
            "a": 2, "b": "y", "c": {"d": [{"e": false}, {"e": true, "z": 1}], "f": 3}, "g": {"h": 2},
            "extra": []
        });
        assert!(shape_mismatches(&upstream, &same, &[]).is_empty());
        // A map: its keys are data, its values must have upstream's type.
        let map = serde_json::json!({"g": {"other": 1, "more": 2}});
        let upstream_g = serde_json::json!({"g": {"h": 1}});
        assert!(shape_mismatches(&upstream_g, &map, &["g.*"]).is_empty());
        assert_eq!(
            shape_mismatches(&upstream_g, &serde_json::json!({"g": {"x": "1"}}), &["g.*"]),
            vec!["g.x: upstream has a number, ours a string"]
        );
        let other = serde_json::json!({"a": "1", "c": {"d": [{"e": 1}]}});
        assert_eq!(
            shape_mismatches(&upstream, &other, &["g"]),
            vec![
                "a: upstream has a number, ours a string",
                "b: missing",
                "c.d[0].e: upstream has a bool, ours a number",
                "c.f: missing",
            ]
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

    #[test]
    fn rfc3339_round_trips_and_reads_offsets() {
        let t = UNIX_EPOCH + Duration::new(1_795_395_723, 4);
        assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), t);
        let utc = parse_rfc3339("2026-11-23T01:02:03Z").unwrap();
        assert_eq!(utc, UNIX_EPOCH + Duration::from_secs(1_795_395_723));
        for same in [
            "2026-11-23T09:02:03+08:00",
            "2026-11-23 09:02:03 08:00",
            "2026-11-22T23:32:03-01:30",
            "2026-11-23t01:02:03z",
        ] {
            assert_eq!(parse_rfc3339(same).unwrap(), utc, "{same}");
        }
        assert_eq!(
            parse_rfc3339("2026-11-23T01:02:03.5Z").unwrap(),
            utc + Duration::from_millis(500)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_709_164_800)
        );
    }

    #[test]
    fn go_time_is_upstreams_layout_and_reads_back() {
        let t = UNIX_EPOCH + Duration::new(1_796_304_083, 123_999_999);
        assert_eq!(go_time(t), "2026-12-03 13:21:23.123 +0000");
        assert_eq!(
            parse_document_time(&go_time(t)).unwrap(),
            t - Duration::from_nanos(999_999)
        );
        let utc = UNIX_EPOCH + Duration::from_secs(1_796_304_083);
        for same in [
            "2026-12-03 13:21:23.000 +0000",
            "2026-12-03 21:21:23 +0800",
            "2026-12-03 12:21:23.000 -0100",
            "2026-12-03T13:21:23Z",
            "2026-12-03T13:21:23.000000000Z",
        ] {
            assert_eq!(parse_document_time(same).unwrap(), utc, "{same}");
        }
        for bad in [
            "",
            "2026-12-03 13:21:23.123",
            "2026-12-03 13:21:23.123 +08",
            "2026-12-03 25:21:23.123 +0000",
            "2026-12-03 13:21:23.123 UTC",
        ] {
            let error = parse_document_time(bad).unwrap_err();
            assert!(error.contains("expected e.g."), "{bad}: {error}");
        }
    }

    #[test]
    fn event_time_reads_new_and_old_documents() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_304_083_123);
        let mut doc = EventDocument::new("h", "r", "oom", None, 0, serde_json::Value::Null);
        doc.set_event_time(t);
        assert_eq!(doc.time, "2026-12-03 13:21:23.123 +0000");
        assert_eq!(doc.event_time().unwrap(), t);
        // A document of an earlier version: RFC 3339 `time`, no `tracer_time`.
        let mut old = serde_json::to_value(&doc).unwrap();
        let map = old.as_object_mut().unwrap();
        map.remove("tracer_time");
        map.insert("time".into(), "2026-12-03T13:21:23.123000000Z".into());
        let old: EventDocument = serde_json::from_value(old).unwrap();
        assert_eq!(old.tracer_time, "");
        assert_eq!(old.event_time().unwrap(), t);
    }

    #[test]
    fn rfc3339_rejects_malformed_times() {
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T01:02:03",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T01:02:03.Z",
            "2026-11-23T01:02:03+8",
            "1969-12-31T23:59:59Z",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad} accepted");
        }
    }
}
