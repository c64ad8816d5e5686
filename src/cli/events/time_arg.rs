//! The time and filter arguments of `events list`, turned into the agent's query.

use std::time::{Duration, SystemTime};

use super::ListArgs;
use crate::events::document::rfc3339;
use crate::events::store::parse_instant;

/// A `--since`/`--until` value that is no time.
#[derive(Debug, thiserror::Error)]
pub enum TimeArgError {
    #[error("`{0}` reaches back before 1970")]
    BeforeEpoch(String),
    /// `parse_instant`'s reason, which quotes the text.
    #[error("{0}; or give a time back from now such as 30s, 15m, 1h, 7d")]
    NotATime(String),
}

/// An argument of `events list` that cannot be sent, with the flag it came with.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {source}")]
pub struct ListArgError {
    flag: &'static str,
    #[source]
    source: TimeArgError,
}

/// The query path of `events list`; relative times are resolved against `now`.
pub fn list_path(args: &ListArgs, now: SystemTime) -> Result<String, ListArgError> {
    let mut params = Vec::new();
    for (name, flag, value) in [
        ("since", "--since", &args.since),
        ("until", "--until", &args.until),
    ] {
        if let Some(value) = value {
            let time =
                parse_time_arg(value, now).map_err(|source| ListArgError { flag, source })?;
            params.push((name, rfc3339(time)));
        }
    }
    if let Some(tracer) = &args.tracer {
        params.push(("tracer_name", tracer.clone()));
    }
    if let Some(container) = &args.container {
        params.push(("container", container.clone()));
    }
    if let Some(limit) = args.limit {
        params.push(("limit", limit.to_string()));
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    Ok(if query.is_empty() {
        "/v1/events".to_string()
    } else {
        format!("/v1/events?{}", query.join("&"))
    })
}

/// `30s`, `15m`, `1h`, `7d` back from `now`, else an RFC 3339 time or Unix seconds.
pub fn parse_time_arg(text: &str, now: SystemTime) -> Result<SystemTime, TimeArgError> {
    let text = text.trim();
    let unit = text
        .char_indices()
        .last()
        .map(|(i, c)| (&text[..i], c))
        .and_then(|(number, unit)| {
            let seconds = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return None,
            };
            number
                .parse::<u64>()
                .ok()
                .map(|n| n.saturating_mul(seconds))
        });
    match unit {
        Some(seconds) => now
            .checked_sub(Duration::from_secs(seconds))
            .ok_or_else(|| TimeArgError::BeforeEpoch(text.to_string())),
        None => parse_instant(text).map_err(TimeArgError::NotATime),
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn list_path_encodes_filters_and_resolves_relative_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_395_723);
        let args = ListArgs {
            since: Some("1h".into()),
            until: Some("2026-11-23T09:02:03+08:00".into()),
            tracer: Some("oom".into()),
            container: Some("web 1".into()),
            limit: Some(5),
            json: false,
        };
        assert_eq!(
            list_path(&args, now).unwrap(),
            "/v1/events?since=2026-11-23T00%3A02%3A03.000000000Z\
             &until=2026-11-23T01%3A02%3A03.000000000Z&tracer_name=oom&container=web%201&limit=5"
        );
        assert_eq!(list_path(&ListArgs::default(), now).unwrap(), "/v1/events");
        let bad = ListArgs {
            since: Some("an hour".into()),
            ..Default::default()
        };
        let err = list_path(&bad, now).unwrap_err().to_string();
        assert!(err.starts_with("--since: "), "{err}");
    }

    #[test]
    fn relative_times_and_unix_seconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for (text, back) in [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86_400)] {
            assert_eq!(
                parse_time_arg(text, now).unwrap(),
                now - Duration::from_secs(back)
            );
        }
        assert_eq!(
            parse_time_arg("1700000000", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert!(parse_time_arg("5y", now).is_err());
    }
}
