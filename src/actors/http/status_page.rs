//! `GET /`: a human status page (parts with state/restarts/overhead, overhead against the budget,
//! the newest events, links to the machine endpoints). The HTML comes from the pure [`render`] so
//! it is tested without a server; the handler only gathers the inputs.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::core::status::{AgentStatus, PartKind};
use crate::events::{EventDocument, EventQuery};

/// How many of the newest events the page lists.
pub const NEWEST_EVENTS: usize = 20;

pub async fn page(State(shared): State<Shared>) -> Response {
    let status = shared.ctx.status.status();
    // Events are optional on the page: a closed or failing store is shown, not an error.
    let events = match shared.ctx.event_store.get() {
        Some(store) => {
            let query = EventQuery {
                limit: NEWEST_EVENTS,
                ..EventQuery::default()
            };
            match tokio::task::spawn_blocking(move || store.query(&query)).await {
                Ok(Ok(documents)) => Ok(documents),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("event store read failed: {e}")),
            }
        }
        None => Err("the event store is not open".to_string()),
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render(&status, &events),
    )
        .into_response()
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(ratio: f64) -> String {
    format!("{:.3}%", ratio * 100.0)
}

/// The whole page. `events` are oldest first (as the store answers); the page shows newest first.
pub fn render(status: &AgentStatus, events: &Result<Vec<EventDocument>, String>) -> String {
    let mut html = String::new();
    html.push_str(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>huatuo-bamai status</title>\
         <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
         .running{color:#070}.failed{color:#b00}.inactive,.disabled{color:#777}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>huatuo-bamai {}</h1><p id=\"summary\">uptime {} s, {}</p>",
        escape(status.version),
        status.uptime_secs,
        if status.ready { "ready" } else { "not ready" }
    ));
    html.push_str(
        "<p id=\"links\"><a href=\"/metrics\">/metrics</a> · \
         <a href=\"/v1/profile?format=svg\">/v1/profile flame graph</a> · \
         <a href=\"/tracers\">/tracers</a> · <a href=\"/v1/events\">/v1/events</a> · \
         <a href=\"/containers/json\">/containers/json</a> · <a href=\"/version\">/version</a> · \
         <a href=\"/readyz\">/readyz</a></p>",
    );

    html.push_str("<h2>Overhead</h2>");
    match &status.overhead {
        Some(o) => html.push_str(&format!(
            "<p id=\"overhead\" class=\"{}\">{} of host CPU against a budget of {} \
             (agent {}, BPF {}{})</p>",
            if o.overhead_ratio > o.budget_ratio {
                "failed"
            } else {
                "running"
            },
            percent(o.overhead_ratio),
            percent(o.budget_ratio),
            percent(o.agent_cpu_ratio),
            percent(o.bpf_ratio),
            if o.bpf_stats {
                ""
            } else {
                "; bpf_stats off, BPF time not seen"
            }
        )),
        None => html.push_str("<p id=\"overhead\">not measured (sampler off or warming up)</p>"),
    }

    html.push_str(
        "<h2>Parts</h2><table id=\"parts\"><tr><th>name</th><th>kind</th><th>state</th>\
         <th>restarts</th><th>overhead</th><th>reason / last error</th></tr>",
    );
    for actor in &status.actors {
        let overhead = status
            .overhead
            .as_ref()
            .and_then(|o| o.probes.iter().find(|p| p.probe == actor.name))
            .map(|p| percent(p.overhead_ratio))
            .unwrap_or_default();
        let why = actor
            .reason
            .as_deref()
            .or(actor.last_error.as_deref())
            .unwrap_or("");
        let state = actor.state.as_str();
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"{state}\">{state}</td><td>{}</td>\
             <td>{overhead}</td><td>{}</td></tr>",
            escape(&actor.name),
            match actor.kind {
                PartKind::Service => "service",
                PartKind::Probe => "probe",
            },
            actor.restarts,
            escape(why)
        ));
    }
    html.push_str("</table>");

    html.push_str("<h2>Newest events</h2>");
    match events {
        Ok(documents) if documents.is_empty() => {
            html.push_str("<p id=\"events\">no events stored</p>")
        }
        Ok(documents) => {
            html.push_str(
                "<table id=\"events\"><tr><th>time</th><th>tracer</th><th>container</th>\
                 <th>document</th></tr>",
            );
            for doc in documents.iter().rev().take(NEWEST_EVENTS) {
                let id = escape(&doc.tracer_id);
                // AutoTracing captures also link their flame graph.
                let flame = if super::event_flamegraph::flame_lines(doc).is_ok() {
                    format!(" · <a href=\"/v1/events/{id}/flamegraph.svg\">flame graph</a>")
                } else {
                    String::new()
                };
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td>\
                     <td><a href=\"/v1/events/{id}\">{id}</a>{flame}</td></tr>",
                    escape(&doc.time),
                    escape(&doc.tracer_name),
                    escape(&doc.container_hostname),
                ));
            }
            html.push_str("</table>");
        }
        Err(e) => html.push_str(&format!(
            "<p id=\"events\">events unavailable: {}</p>",
            escape(e)
        )),
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::probe::Roles;
    use crate::core::status::{ActorStatus, ChildState, OverheadStatus, ProbeOverhead};

    fn actor(name: &str, kind: PartKind, state: ChildState, restarts: u64) -> ActorStatus {
        ActorStatus {
            name: name.to_string(),
            kind,
            flag: Roles::NONE,
            state,
            reason: None,
            restarts,
            last_error: None,
            uptime_secs: None,
            started_at: None,
            sampling_divisor: None,
            detail: None,
            report: None,
        }
    }

    fn status(overhead: Option<OverheadStatus>) -> AgentStatus {
        let mut failed = actor("oom", PartKind::Probe, ChildState::Failed, 3);
        failed.last_error = Some("attach <oom_kill> failed".to_string());
        AgentStatus {
            version: "9.9.9",
            uptime_secs: 42,
            ready: false,
            actors: vec![
                actor("http", PartKind::Service, ChildState::Running, 0),
                failed,
            ],
            overhead,
        }
    }

    fn event(n: usize) -> EventDocument {
        let mut doc =
            EventDocument::new("host", "region", "softirq", None, 0, serde_json::json!({}));
        doc.tracer_id = format!("id-{n}");
        doc
    }

    #[test]
    fn parts_rows_show_state_restarts_and_escaped_errors() {
        let html = render(&status(None), &Ok(Vec::new()));
        assert!(html.contains("<h1>huatuo-bamai 9.9.9</h1>"));
        assert!(html.contains("uptime 42 s, not ready"));
        assert!(html
            .contains("<tr><td>oom</td><td>probe</td><td class=\"failed\">failed</td><td>3</td>"));
        // Kernel/error text must never become markup.
        assert!(html.contains("attach &lt;oom_kill&gt; failed"));
        assert!(!html.contains("<oom_kill>"));
        assert!(html.contains("no events stored"));
        assert!(html.contains("not measured"));
        for link in [
            "/metrics",
            "/v1/profile?format=svg",
            "/tracers",
            "/v1/events",
        ] {
            assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
        }
    }

    #[test]
    fn overhead_over_budget_is_flagged_and_per_probe_shown() {
        let overhead = OverheadStatus {
            budget_ratio: 0.01,
            overhead_ratio: 0.02,
            agent_cpu_ratio: 0.015,
            bpf_ratio: 0.005,
            bpf_stats: true,
            probes: vec![ProbeOverhead {
                probe: "oom".to_string(),
                overhead_ratio: 0.00125,
                sampling_divisor: None,
            }],
            decisions: Vec::new(),
        };
        let html = render(&status(Some(overhead)), &Ok(Vec::new()));
        assert!(html.contains("class=\"failed\">2.000% of host CPU against a budget of 1.000%"));
        assert!(html.contains("<td>0.125%</td>"));
    }

    #[test]
    fn newest_twenty_events_first_with_links() {
        let events: Vec<EventDocument> = (0..25).map(event).collect();
        let html = render(&status(None), &Ok(events));
        assert!(html.contains("<a href=\"/v1/events/id-24\">id-24</a>"));
        assert!(html.contains("id-5<"));
        assert!(!html.contains("id-4<"), "only the newest {NEWEST_EVENTS}");
        let newest = html.find("id-24").unwrap_or(usize::MAX);
        let older = html.find("id-23").unwrap_or(0);
        assert!(newest < older, "newest first");
        assert!(!html.contains("flamegraph.svg"), "no flame data, no link");
        let mut capture = event(30);
        capture.tracer_data = serde_json::json!({"folded_stacks": "app;spin 3\n"});
        let html = render(&status(None), &Ok(vec![capture]));
        assert!(html.contains("<a href=\"/v1/events/id-30/flamegraph.svg\">flame graph</a>"));
    }

    #[test]
    fn store_error_is_shown_not_fatal() {
        let html = render(
            &status(None),
            &Err("the event store is not open".to_string()),
        );
        assert!(html.contains("events unavailable: the event store is not open"));
    }
}
