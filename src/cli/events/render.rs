//! Events for people: the table of `events list`, the document of `events show`.

use serde_json::Value;

/// Longest summary of `tracer_data` in a table row, in characters.
const SUMMARY_CHARS: usize = 72;

fn text(document: &Value, key: &str) -> String {
    match document.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A document's `time` in upstream's layout at millisecond precision, whichever layout it was
/// stored in (`2026-11-23T01:02:03.123456789Z` of earlier versions → `2026-11-23 01:02:03.123
/// +0000`); a time that does not parse is shown as it is.
fn short_time(time: &str) -> String {
    crate::events::document::parse_document_time(time)
        .map(crate::events::document::go_time)
        .unwrap_or_else(|_| time.to_string())
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

/// One line of `events tail` for the CloudEvents envelope `event` (JSON text): time, tracer,
/// container and id of its `data` document.
pub fn tail_line(event: &str) -> String {
    let event: Value = serde_json::from_str(event).unwrap_or_default();
    let document = &event["data"];
    format!(
        "{}  {}  {}  {}",
        short_time(&text(document, "time")),
        text(document, "tracer_name"),
        container_cell(document),
        text(document, "tracer_id")
    )
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
    const ENVELOPE: [&str; 15] = [
        "tracer_id",
        "tracer_name",
        "tracer_type",
        "time",
        "tracer_time",
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
        // Upstream's layout (this version's documents) at another offset.
        host["time"] = json!("2026-11-23 09:02:04.5 +0800");
        let table = render_table(&[oom_document(), host]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("TIME"), "{table}");
        // The RFC 3339 `time` of an earlier version's document, shown in the same layout.
        assert!(
            lines[1].starts_with("2026-11-23 01:02:03.123 +0000  oom"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("2026-11-23 01:02:04.500 +0000  oom"),
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
