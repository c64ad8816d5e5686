//! Upstream HUATUO's document envelope (`hostname, region, uploaded_time, time, tracer_time,
//! container_*, tracer_name, tracer_id, tracer_type, tracer_data`) plus the kernel `cgroup_id`.
//! Grafana dashboards and ES queries depend on these field names and on their JSON types: `time`
//! and `tracer_time` are upstream's Go layout `2006-01-02 15:04:05.000 -0700` (ES maps that as
//! text, not as a date: an RFC 3339 `time` in a shared index would conflict), `uploaded_time` is
//! RFC 3339. Upstream's `record_id` is not emitted: upstream adds it only to its SQLite index
//! columns (`DocumentStoreMapper.Fields`), never to the JSON it sends to Elasticsearch.

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

/// Upstream's document time layout (Go `2006-01-02 15:04:05.000 -0700`), in UTC:
/// `2026-12-03 13:21:23.123 +0000`. Milliseconds are truncated, as Go's formatting does.
pub fn go_time(time: std::time::SystemTime) -> String {
    let text = rfc3339(time);
    // `YYYY-MM-DDTHH:MM:SS.mmm` of the RFC 3339 text, with a space for the `T`.
    format!("{} {} +0000", &text[..10], &text[11..23])
}

/// Reads a document's `time` / `tracer_time`: upstream's layout (`2026-12-03 13:21:23.123
/// +0000`, any offset, fraction optional) or RFC 3339 (what earlier versions stored).
pub fn parse_document_time(text: &str) -> Result<std::time::SystemTime, String> {
    let s = text.trim();
    // Go layout: the offset is ` +hhmm` after the seconds; rewrite it as RFC 3339's `+hh:mm`.
    if let Some((clock, offset)) = s.rsplit_once(' ') {
        let bytes = offset.as_bytes();
        if clock.len() >= 19
            && bytes.len() == 5
            && matches!(bytes[0], b'+' | b'-')
            && bytes[1..].iter().all(u8::is_ascii_digit)
        {
            let rfc = format!("{clock}{}:{}", &offset[..3], &offset[3..]);
            return parse_rfc3339(&rfc).map_err(|e| {
                format!("bad time `{s}`: {e} (expected e.g. 2026-12-03 13:21:23.123 +0000)")
            });
        }
    }
    parse_rfc3339(s).map_err(|e| {
        format!("bad time `{s}`: {e} (expected e.g. 2026-12-03 13:21:23.123 +0000 or RFC 3339)")
    })
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm, the inverse of the above).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time: `2026-11-23T01:02:03Z`, `2026-11-23T09:02:03.5+08:00`. `t` or a
/// space may replace `T` and `z` may replace `Z`; an offset written ` 08:00` is read as `+08:00`
/// (a `+` that a URL query decoded to a space).
pub fn parse_rfc3339(text: &str) -> Result<std::time::SystemTime, String> {
    let s = text.trim();
    let field = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        s.get(range)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("bad {what}; expected e.g. 2026-11-23T01:02:03Z"))
    };
    let separator = |at: usize, allowed: &[u8]| {
        s.as_bytes()
            .get(at)
            .is_some_and(|b| allowed.contains(b))
            .then_some(())
            .ok_or_else(|| "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset".to_string())
    };
    let (year, month, day) = (
        field(0..4, "year")?,
        field(5..7, "month")?,
        field(8..10, "day")?,
    );
    separator(4, b"-")?;
    separator(7, b"-")?;
    separator(10, b"Tt ")?;
    let (hour, minute, second) = (
        field(11..13, "hour")?,
        field(14..16, "minute")?,
        field(17..19, "second")?,
    );
    separator(13, b":")?;
    separator(16, b":")?;
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let max_day = if month == 2 && leap {
        29
    } else {
        *month_days
            .get((month - 1).clamp(0, 11) as usize)
            .unwrap_or(&31)
    };
    if !(1..=12).contains(&month) || !(1..=max_day).contains(&day) {
        return Err(format!("no such date {year:04}-{month:02}-{day:02}"));
    }
    // 60 is a leap second, read as the last second of the minute.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("no such time {hour:02}:{minute:02}:{second:02}"));
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err("expected digits after the decimal point".to_string());
        }
        let digits = &after_dot[..len.min(9)];
        nanos = format!("{digits:0<9}").parse().unwrap_or(0);
        rest = &after_dot[len..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+' | b' ') => 1,
                Some(b'-') => -1,
                _ => return Err("expected Z or an offset such as +08:00 after the time".into()),
            };
            let offset = &rest[1..];
            let hours = offset.get(0..2).and_then(|h| h.parse::<i64>().ok());
            let minutes = offset.get(3..5).and_then(|m| m.parse::<i64>().ok());
            match (hours, minutes, offset.len(), offset.as_bytes().get(2)) {
                (Some(h), Some(m), 5, Some(b':')) if h < 24 && m < 60 => sign * (h * 3600 + m * 60),
                _ => return Err(format!("bad offset `{rest}`; expected e.g. +08:00")),
            }
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset_secs;
    let secs =
        u64::try_from(secs).map_err(|_| "times before 1970 are not supported".to_string())?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
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

/// Field paths upstream leaves out of a `tracer_name` document when they are empty or zero (its
/// `omitempty` JSON tags, `core/events/*.go`, `pkg/types/*.go`, `internal/packet/types.go`):
/// the `optional` of [`shape_mismatches`] when comparing with an upstream fixture.
pub fn upstream_omitempty(tracer_name: &str) -> Vec<&'static str> {
    let mut paths = vec![
        "container_id",
        "container_hostname",
        "container_host_namespace",
        "container_type",
        "container_qos",
    ];
    paths.extend_from_slice(match tracer_name {
        "dropwatch" => &[
            "tracer_data.type",
            "tracer_data.drop_reason_group",
            "tracer_data.drop_location",
            "tracer_data.source",
            "tracer_data.container_id",
            "tracer_data.packet_skb_addr",
            "tracer_data.layers",
            "tracer_data.layers.ether",
            "tracer_data.layers.ipv4",
            "tracer_data.layers.ipv4.flags",
            "tracer_data.layers.ipv4.frag_offset",
            "tracer_data.layers.ipv6",
            "tracer_data.layers.tcp",
            "tracer_data.layers.tcp.urgent",
            "tracer_data.layers.tcp.sk_state",
            "tracer_data.layers.udp",
            "tracer_data.layers.icmp",
            "tracer_data.layers.icmp.id",
            "tracer_data.layers.icmp.seq",
            "tracer_data.layers.arp",
        ][..],
        "oom" => &[
            "tracer_data.trigger.container_id",
            "tracer_data.trigger.container_hostname",
            "tracer_data.trigger.cgroup",
            "tracer_data.trigger.cgroup.path",
            "tracer_data.trigger.cgroup.current",
            "tracer_data.trigger.cgroup.max",
            "tracer_data.trigger.cgroup.stat",
            "tracer_data.trigger.cgroup.stat.*",
            "tracer_data.trigger.cgroup.events",
            "tracer_data.trigger.cgroup.events.*",
            "tracer_data.victim.container_id",
            "tracer_data.victim.container_hostname",
            "tracer_data.victim.cgroup",
            "tracer_data.victim.cgroup.path",
            "tracer_data.victim.cgroup.current",
            "tracer_data.victim.cgroup.max",
            "tracer_data.victim.cgroup.stat",
            "tracer_data.victim.cgroup.stat.*",
            "tracer_data.victim.cgroup.events",
            "tracer_data.victim.cgroup.events.*",
            "tracer_data.memory_snapshot",
            "tracer_data.memory_snapshot.host_meminfo",
        ][..],
        "tcp_retransmit" => &[
            "tracer_data.source",
            "tracer_data.container_id",
            "tracer_data.memory_cgroup_css_addr",
            "tracer_data.net_namespace_cookie",
            "tracer_data.net_namespace_inum",
            "tracer_data.tcp_end_seq",
            "tracer_data.tcp_flags",
            "tracer_data.reord_seen",
            "tracer_data.dsack_dups",
            "tracer_data.skb_addr",
            "tracer_data.drop_location",
        ][..],
        _ => &[][..],
    });
    paths
}

/// Where `ours` differs in shape from `upstream` (an upstream document, e.g. a fixture of
/// tests/fixtures/upstream/documents/): every field path of `upstream` must exist in `ours` with
/// the same JSON type (a null in `upstream` matches anything; each element of an array of `ours`
/// is checked against the first element of upstream's). Paths listed in `optional` (`a.b.c`)
/// may be missing: upstream omits them too when empty. An object listed as `a.b.*` is a map
/// whose keys are data (memory.stat keys differ by kernel): each of its values in `ours` is
/// checked against upstream's first value instead. Empty when the shapes agree.
pub fn shape_mismatches(
    upstream: &serde_json::Value,
    ours: &serde_json::Value,
    optional: &[&str],
) -> Vec<String> {
    fn kind(value: &serde_json::Value) -> &'static str {
        match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }
    fn walk(
        upstream: &serde_json::Value,
        ours: &serde_json::Value,
        path: &str,
        optional: &[&str],
        out: &mut Vec<String>,
    ) {
        if upstream.is_null() {
            return;
        }
        if kind(upstream) != kind(ours) {
            out.push(format!(
                "{path}: upstream has a {}, ours a {}",
                kind(upstream),
                kind(ours)
            ));
            return;
        }
        match (upstream, ours) {
            (serde_json::Value::Object(up), serde_json::Value::Object(our))
                if optional.contains(&format!("{path}.*").as_str()) =>
            {
                if let Some(first) = up.values().next() {
                    for (key, mine) in our {
                        walk(first, mine, &format!("{path}.{key}"), optional, out);
                    }
                }
            }
            (serde_json::Value::Object(up), serde_json::Value::Object(our)) => {
                for (key, value) in up {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    match our.get(key) {
                        Some(mine) => walk(value, mine, &child, optional, out),
                        None if optional.contains(&child.as_str()) => {}
                        None => out.push(format!("{child}: missing")),
                    }
                }
            }
            (serde_json::Value::Array(up), serde_json::Value::Array(our)) => {
                if let Some(first) = up.first() {
                    for (i, mine) in our.iter().enumerate() {
                        walk(first, mine, &format!("{path}[{i}]"), optional, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(upstream, ours, "", optional, &mut out);
    out
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
