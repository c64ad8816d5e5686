//! `huatuo-bamai events …`: reads the events a running agent stored, over its HTTP API
//! (`GET /v1/events`, `GET /v1/events/<tracer_id>`), as readable tables or `--json`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::document::rfc3339;
use super::store::parse_instant;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Longest summary of `tracer_data` in a table row, in characters.
const SUMMARY_CHARS: usize = 72;

#[derive(clap::Args)]
pub struct EventsArgs {
    /// The agent's HTTP address, HOST:PORT (default: http.listen of the configuration).
    #[arg(long, global = true)]
    pub server: Option<String>,
    #[command(subcommand)]
    pub action: EventsAction,
}

#[derive(clap::Subcommand)]
pub enum EventsAction {
    /// Stored events, oldest first: time, tracer, container, id and a summary.
    List(ListArgs),
    /// Follow new events live (the agent's POST /v1/events/watch stream), one line each.
    Tail {
        /// Only events of tracers matching this regular expression (`oom`, `^(oom|hungtask)$`).
        #[arg(long = "type", value_name = "REGEX")]
        tracer: Option<String>,
        /// Print each CloudEvents envelope as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// One stored event in full.
    Show {
        /// The event's tracer_id (the ID column of `events list`).
        id: String,
        /// Print the document as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Default)]
pub struct ListArgs {
    /// Events since: a time back from now (`30s`, `15m`, `1h`, `7d`), RFC 3339 or Unix seconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Events until (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only events of this tracer (`oom`, `hungtask`, …).
    #[arg(long = "type", visible_alias = "tracer-name", value_name = "TRACER")]
    pub tracer: Option<String>,
    /// Only events of this container: an id prefix, its hostname or its name.
    #[arg(long)]
    pub container: Option<String>,
    /// At most this many events, the newest (agent default 100, at most 10000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the documents as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Where to reach an agent listening on `listen`: a wildcard address means this host.
pub fn server_of_listen(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        return format!("127.0.0.1:{port}");
    }
    if let Some(port) = listen.strip_prefix("[::]:") {
        return format!("[::1]:{port}");
    }
    listen.to_string()
}

pub fn run(server: &str, action: EventsAction) -> ExitCode {
    let result = match action {
        EventsAction::List(args) => list(server, &args),
        EventsAction::Show { id, json } => show(server, &id, json),
        EventsAction::Tail { tracer, json } => tail(server, tracer.as_deref(), json),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("huatuo-bamai events: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Streams events until the agent closes the stream; prints as they arrive.
fn tail(server: &str, tracer: Option<&str>, json: bool) -> Result<String, String> {
    use std::io::{BufRead, BufReader, Write};
    let filters = match tracer {
        Some(regex) => serde_json::json!({ "filters": { "tracer_name": regex } }),
        None => serde_json::json!({ "filters": {} }),
    };
    let body = filters.to_string();
    let mut stream = std::net::TcpStream::connect(server)
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    write!(
        stream,
        "POST /v1/events/watch HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("cannot send the watch request: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("no reply from {server}: {e}"))?;
    if !status.contains(" 200 ") {
        return Err(format!("the agent refused the stream: {}", status.trim()));
    }
    let stdout = std::io::stdout();
    for line in reader.lines() {
        let line = line.map_err(|e| format!("stream interrupted: {e}"))?;
        // Chunked framing lines and SSE ids/pings are skipped; `data:` lines carry events.
        let Some(data) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
        else {
            continue;
        };
        let mut out = stdout.lock();
        let printed = if json {
            writeln!(out, "{data}")
        } else {
            let event: Value = serde_json::from_str(data).unwrap_or_default();
            let document = &event["data"];
            writeln!(
                out,
                "{}  {}  {}  {}",
                short_time(&text(document, "time")),
                text(document, "tracer_name"),
                container_cell(document),
                text(document, "tracer_id")
            )
        };
        if printed.and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok("stream closed by the agent".to_string())
}

fn list(server: &str, args: &ListArgs) -> Result<String, String> {
    let path = list_path(args, SystemTime::now())?;
    let data = fetch(server, &path)?;
    let documents = data.as_array().cloned().unwrap_or_default();
    if args.json {
        return serde_json::to_string_pretty(&documents).map_err(|e| e.to_string());
    }
    Ok(render_table(&documents))
}

fn show(server: &str, id: &str, json: bool) -> Result<String, String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!(
            "`{id}` is not a tracer_id (see the ID column of `events list`)"
        ));
    }
    let document = fetch(server, &format!("/v1/events/{id}"))?;
    if json {
        return serde_json::to_string_pretty(&document).map_err(|e| e.to_string());
    }
    Ok(render_document(&document))
}

/// The query path of `events list`; relative times are resolved against `now`.
pub fn list_path(args: &ListArgs, now: SystemTime) -> Result<String, String> {
    let mut params = Vec::new();
    for (name, flag, value) in [
        ("since", "--since", &args.since),
        ("until", "--until", &args.until),
    ] {
        if let Some(value) = value {
            let time = parse_time_arg(value, now).map_err(|e| format!("{flag}: {e}"))?;
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
pub fn parse_time_arg(text: &str, now: SystemTime) -> Result<SystemTime, String> {
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
            .ok_or_else(|| format!("`{text}` reaches back before 1970")),
        None => parse_instant(text)
            .map_err(|e| format!("{e}; or give a time back from now such as 30s, 15m, 1h, 7d")),
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

/// GETs `path` from the agent and returns the `data` of its JSON envelope, or the error's message.
fn fetch(server: &str, path: &str) -> Result<Value, String> {
    let (status, body) = http_get(server, path)?;
    let reply: Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "malformed reply from {server}{path} (HTTP {status}, {e}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    if status == 200 {
        return Ok(reply.get("data").cloned().unwrap_or(Value::Null));
    }
    let message = reply
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no error message");
    Err(format!("{message} (HTTP {status})"))
}

fn http_get(server: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(server).map_err(|e| {
        format!("cannot connect to the agent at {server}: {e} (is it running? see --server)")
    })?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send the request to {server}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("no reply from {server}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP reply from {server}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed HTTP status line from {server}"))?;
    let body = &raw[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("malformed chunked body")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".to_string());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

fn text(document: &Value, key: &str) -> String {
    match document.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `2026-11-23T01:02:03.123456789Z` → `2026-11-23T01:02:03.123Z`.
fn short_time(time: &str) -> String {
    match (time.find('.'), time.strip_suffix('Z')) {
        (Some(dot), Some(_)) if time.len() > dot + 4 => format!("{}Z", &time[..dot + 4]),
        _ => time.to_string(),
    }
}

/// The container column: hostname, else the short id, else `-` (the host).
fn container_cell(document: &Value) -> String {
    let hostname = text(document, "container_hostname");
    if !hostname.is_empty() {
        return hostname;
    }
    let id = text(document, "container_id");
    match id.get(..12) {
        Some(short) => short.to_string(),
        None if id.is_empty() => "-".to_string(),
        None => id,
    }
}

/// A one-line summary of `tracer_data`: its short scalar fields (one level of nesting as
/// `outer.inner`) as `key=value`; stacks and long texts are left out.
pub fn summary(data: &Value) -> String {
    fn collect(value: &Value, prefix: &str, depth: usize, parts: &mut Vec<String>) {
        let Value::Object(map) = value else {
            if !value.is_null() {
                parts.push(value.to_string());
            }
            return;
        };
        for (key, value) in map {
            let key = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(_) if depth == 0 => collect(value, &key, depth + 1, parts),
                Value::Object(_) | Value::Array(_) | Value::Null => {}
                Value::String(s) if s.contains('\n') || s.chars().count() > 40 => {}
                Value::String(s) => parts.push(format!("{key}={s}")),
                other => parts.push(format!("{key}={other}")),
            }
        }
    }
    let mut parts = Vec::new();
    collect(data, "", 0, &mut parts);
    let line = parts.join(" ");
    if line.chars().count() <= SUMMARY_CHARS {
        return line;
    }
    let cut: String = line.chars().take(SUMMARY_CHARS - 1).collect();
    format!("{cut}…")
}

pub fn render_table(documents: &[Value]) -> String {
    if documents.is_empty() {
        return "no events".to_string();
    }
    let mut rows = vec![["TIME", "TRACER", "CONTAINER", "ID", "SUMMARY"].map(String::from)];
    for document in documents {
        rows.push([
            short_time(&text(document, "time")),
            text(document, "tracer_name"),
            container_cell(document),
            text(document, "tracer_id"),
            summary(document.get("tracer_data").unwrap_or(&Value::Null)),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| format!("{cell:<w$}", w = if i == 4 { 0 } else { widths[i] }))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

/// One document for people: the envelope as `key: value` lines, then `tracer_data` with
/// multi-line texts (stacks) printed as they are.
pub fn render_document(document: &Value) -> String {
    const ENVELOPE: [&str; 14] = [
        "tracer_id",
        "tracer_name",
        "tracer_type",
        "time",
        "uploaded_time",
        "hostname",
        "region",
        "container_id",
        "container_hostname",
        "container_host_namespace",
        "container_type",
        "container_qos",
        "cgroup_id",
        "tracer_data",
    ];
    let width = ENVELOPE.iter().map(|k| k.len()).max().unwrap_or(0) + 1;
    let mut out = Vec::new();
    for key in &ENVELOPE[..ENVELOPE.len() - 1] {
        let value = text(document, key);
        // A cgroup id of 0 means "not attributed".
        let hidden = value.is_empty() || (*key == "cgroup_id" && value == "0");
        if !hidden {
            out.push(format!("{:<width$} {value}", format!("{key}:")));
        }
    }
    let Some(data) = document.get("tracer_data") else {
        return out.join("\n");
    };
    out.push("tracer_data:".to_string());
    match data {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(s) if s.contains('\n') => {
                        out.push(format!("  {key}:"));
                        out.extend(s.trim_end().lines().map(|l| format!("    {l}")));
                    }
                    Value::String(s) => out.push(format!("  {key}: {s}")),
                    Value::Object(_) | Value::Array(_) => {
                        out.push(format!("  {key}:"));
                        let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                        out.extend(pretty.lines().map(|l| format!("    {l}")));
                    }
                    other => out.push(format!("  {key}: {other}")),
                }
            }
        }
        other => out.push(format!("  {other}")),
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
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
        let err = list_path(&bad, now).unwrap_err();
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

    #[test]
    fn server_defaults_to_this_host_for_wildcard_listeners() {
        assert_eq!(server_of_listen("0.0.0.0:19704"), "127.0.0.1:19704");
        assert_eq!(server_of_listen("[::]:19704"), "[::1]:19704");
        assert_eq!(server_of_listen("10.0.0.1:19704"), "10.0.0.1:19704");
    }

    fn oom_document() -> Value {
        json!({
            "hostname": "h", "region": "r",
            "time": "2026-11-23T01:02:03.123456789Z",
            "uploaded_time": "2026-11-23T01:02:03.123456789Z",
            "container_id": "d0c5000000000000000000000000000000000000000000000000000000000001",
            "container_hostname": "web-1",
            "cgroup_id": 443,
            "tracer_name": "oom",
            "tracer_id": "187a0b0c0d0e0f100000000000000001",
            "tracer_type": "event",
            "tracer_data": {
                "victim": {"pid": 42, "comm": "stress", "cgroup": {"path": "/docker/x"}},
                "stack": "a\nb",
            }
        })
    }

    #[test]
    fn table_shows_time_tracer_container_id_and_summary() {
        let mut host = oom_document();
        host["container_id"] = json!("");
        host["container_hostname"] = json!("");
        let table = render_table(&[oom_document(), host]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("TIME"), "{table}");
        assert!(
            lines[1].starts_with("2026-11-23T01:02:03.123Z  oom"),
            "{table}"
        );
        assert!(lines[1].contains("web-1"), "{table}");
        assert!(
            lines[1].contains("187a0b0c0d0e0f100000000000000001"),
            "{table}"
        );
        assert!(
            lines[1].ends_with("victim.comm=stress victim.pid=42"),
            "{table}"
        );
        assert!(lines[2].contains("  -  "), "{table}");
        assert_eq!(render_table(&[]), "no events");
    }

    #[test]
    fn summaries_are_cut_to_one_short_line() {
        let long: serde_json::Map<String, Value> = (0..30)
            .map(|i| (format!("field{i:02}"), json!(i)))
            .collect();
        let line = summary(&Value::Object(long));
        assert_eq!(line.chars().count(), SUMMARY_CHARS);
        assert!(line.ends_with('…'));
        assert_eq!(summary(&json!({"stack": "x".repeat(100)})), "");
    }

    #[test]
    fn document_view_prints_stacks_as_lines() {
        let view = render_document(&oom_document());
        assert!(view.contains("tracer_name:"), "{view}");
        assert!(view.contains("container_hostname:       web-1"), "{view}");
        assert!(view.contains("  stack:\n    a\n    b"), "{view}");
        assert!(view.contains("  victim:\n    {"), "{view}");
        assert!(!view.contains("container_qos"), "{view}");
    }
}
