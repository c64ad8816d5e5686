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
