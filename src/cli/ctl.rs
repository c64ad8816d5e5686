//! `huatuo-bamai ctl …`: a client of the control socket that prints readable tables (or `--json`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::core::control_protocol::{Request, Response};

/// Sends one request and returns the reply.
pub fn send(socket: &Path, request: &Request) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to control socket {}: {e} (is the agent running? see --socket)",
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("cannot send request: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| format!("no reply from agent: {e}"))?;
    serde_json::from_str(&reply).map_err(|e| format!("malformed reply from agent ({e}): {reply}"))
}

/// Renders a reply for people: a status table, the list of applied actions, or the error.
pub fn render(request: &Request, response: &Response) -> String {
    if !response.ok {
        return format!(
            "error: {}",
            response.error.as_deref().unwrap_or("unknown error")
        );
    }
    let result = response.result.clone().unwrap_or_default();
    match request {
        Request::Status => render_status(&result),
        _ => match result.get("applied").and_then(|a| a.as_array()) {
            Some(actions) if actions.is_empty() => "ok (no change)".to_string(),
            Some(actions) => actions
                .iter()
                .filter_map(|a| a.as_str())
                .map(|a| format!("ok: {a}"))
                .collect::<Vec<_>>()
                .join("\n"),
            None => "ok".to_string(),
        },
    }
}

fn render_status(status: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value, key: &str| -> String {
        match v.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".to_string(),
            Some(other) => other.to_string(),
        }
    };
    let mut rows = vec![[
        "ACTOR".to_string(),
        "KIND".to_string(),
        "STATE".to_string(),
        "RESTARTS".to_string(),
        "UPTIME".to_string(),
        "DETAIL".to_string(),
    ]];
    for actor in status
        .get("actors")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let uptime = actor
            .get("uptime_secs")
            .and_then(|u| u.as_u64())
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "-".to_string());
        let mut detail = match (
            actor.get("reason"),
            actor.get("detail"),
            actor.get("last_error"),
        ) {
            (Some(serde_json::Value::String(r)), _, _) => r.clone(),
            // A running service's own account (the Elasticsearch sink) says more than an old error.
            (_, Some(serde_json::Value::String(d)), _) => d.clone(),
            (_, _, Some(serde_json::Value::String(e))) => format!("last error: {e}"),
            _ => String::new(),
        };
        if let Some(divisor) = actor.get("sampling_divisor").and_then(|d| d.as_u64()) {
            if divisor > 1 {
                let sep = if detail.is_empty() { "" } else { "; " };
                detail = format!("sampled 1/{divisor}{sep}{detail}");
            }
        }
        rows.push([
            text(actor, "name"),
            text(actor, "kind"),
            text(actor, "state"),
            text(actor, "restarts"),
            uptime,
            detail,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let mut out = format!(
        "huatuo-bamai {} up {}s ready={}\n",
        text(status, "version"),
        text(status, "uptime_secs"),
        text(status, "ready")
    );
    if let Some(overhead) = status.get("overhead").filter(|o| !o.is_null()) {
        out.push_str(&render_overhead(overhead));
    }
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == 5 {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `overhead 0.42% of host CPU (agent 0.10%, bpf 0.32%), budget 1.00%` and the latest decisions.
fn render_overhead(overhead: &serde_json::Value) -> String {
    let pct = |key: &str| {
        overhead
            .get(key)
            .and_then(|v| v.as_f64())
            .map_or_else(|| "-".to_string(), |v| format!("{:.2}%", v * 100.0))
    };
    let mut out = format!(
        "overhead {} of host CPU (agent {}, bpf {}), budget {}",
        pct("overhead_ratio"),
        pct("agent_cpu_ratio"),
        pct("bpf_ratio"),
        pct("budget_ratio")
    );
    if overhead.get("bpf_stats").and_then(|v| v.as_bool()) == Some(false) {
        out.push_str(" [bpf_stats off: BPF run time not seen]");
    }
    out.push('\n');
    let decisions = overhead.get("decisions").and_then(|d| d.as_array());
    for d in decisions.into_iter().flatten().rev().take(3) {
        let field = |key: &str| {
            d.get(key)
                .map(|v| v.to_string().trim_matches('"').to_string())
        };
        out.push_str(&format!(
            "  sampler: {} {} 1/{} -> 1/{} at overhead {:.2}% (unix {})\n",
            field("action").unwrap_or_default(),
            field("probe").unwrap_or_default(),
            field("from").unwrap_or_default(),
            field("to").unwrap_or_default(),
            d.get("overhead_ratio")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
                * 100.0,
            field("at").unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table_lists_actors() {
        let response = Response::ok(json!({
            "version": "0.1.0", "uptime_secs": 5, "ready": true,
            "actors": [
                {"name": "softirq", "kind": "probe", "state": "running", "restarts": 0, "uptime_secs": 5, "reason": null, "last_error": null},
                {"name": "kprobe_x", "kind": "probe", "state": "inactive", "restarts": 0, "uptime_secs": 5, "reason": "kprobes unavailable", "last_error": null}
            ]
        }));
        let table = render(&Request::Status, &response);
        assert!(table.contains("ACTOR"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("softirq") && l.contains("running")),
            "{table}"
        );
        assert!(table.contains("kprobes unavailable"), "{table}");
    }

    #[test]
    fn status_shows_overhead_and_sampling() {
        let response = Response::ok(json!({
            "version": "0.1.0", "uptime_secs": 5, "ready": true,
            "actors": [
                {"name": "dropwatch", "kind": "probe", "state": "running", "restarts": 0, "uptime_secs": 5, "reason": null, "last_error": null, "sampling_divisor": 64}
            ],
            "overhead": {"budget_ratio": 0.01, "overhead_ratio": 0.0042, "agent_cpu_ratio": 0.001, "bpf_ratio": 0.0032, "bpf_stats": true, "probes": [],
                "decisions": [{"at": 1, "probe": "dropwatch", "action": "throttle", "from": 1, "to": 64, "overhead_ratio": 0.05}]}
        }));
        let table = render(&Request::Status, &response);
        assert!(
            table.contains("overhead 0.42% of host CPU (agent 0.10%, bpf 0.32%), budget 1.00%"),
            "{table}"
        );
        assert!(
            table.contains("throttle dropwatch 1/1 -> 1/64 at overhead 5.00%"),
            "{table}"
        );
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("dropwatch") && l.contains("sampled 1/64")),
            "{table}"
        );
    }

    #[test]
    fn a_service_detail_is_shown_before_an_old_error() {
        let response = Response::ok(json!({
            "version": "0.1.0", "uptime_secs": 5, "ready": true,
            "actors": [
                {"name": "elasticsearch", "kind": "service", "state": "running", "restarts": 1,
                 "uptime_secs": 5, "reason": null, "last_error": "old",
                 "detail": "spooling 3 documents (1 KiB): http://es:9200 unavailable"}
            ]
        }));
        let table = render(&Request::Status, &response);
        let row = table.lines().find(|l| l.starts_with("elasticsearch"));
        assert!(
            row.is_some_and(
                |l| l.ends_with("spooling 3 documents (1 KiB): http://es:9200 unavailable")
            ),
            "{table}"
        );
    }

    #[test]
    fn errors_are_printed() {
        let text = render(&Request::Reload, &Response::error("bad key"));
        assert_eq!(text, "error: bad key");
    }
}
