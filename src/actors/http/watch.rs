//! `POST /v1/events/watch`: a live Server-Sent Events stream of event documents, as upstream —
//! regex filters on document fields, each event a CloudEvents 1.0 envelope whose data is the
//! document without `tracer_data`, `: ping` every 30 s, at most 100 clients (then 429).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::events::{EventDocument, EventSender};

pub const MAX_CLIENTS: usize = 100;
const PING: Duration = Duration::from_secs(30);

/// Open streams, to refuse client 101 with 429.
pub static CLIENTS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    #[serde(default)]
    pub filters: WatchFilters,
}

/// Upstream's filters: each a regular expression matched against the document field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchFilters {
    pub tracer_name: Option<String>,
    pub hostname: Option<String>,
    pub container_hostname: Option<String>,
    pub container_host_namespace: Option<String>,
    pub container_qos: Option<String>,
    pub region: Option<String>,
}

/// Reads one filterable field of a document.
type Field = fn(&EventDocument) -> &str;

/// Compiled filters: (field accessor, regex).
pub struct Matcher(Vec<(Field, regex::Regex)>);

impl Matcher {
    pub fn compile(filters: &WatchFilters) -> Result<Matcher, String> {
        let fields: [(&str, &Option<String>, Field); 6] = [
            ("tracer_name", &filters.tracer_name, |d| &d.tracer_name),
            ("hostname", &filters.hostname, |d| &d.hostname),
            ("container_hostname", &filters.container_hostname, |d| {
                &d.container_hostname
            }),
            (
                "container_host_namespace",
                &filters.container_host_namespace,
                |d| &d.container_host_namespace,
            ),
            ("container_qos", &filters.container_qos, |d| {
                &d.container_qos
            }),
            ("region", &filters.region, |d| &d.region),
        ];
        let mut compiled = Vec::new();
        for (name, pattern, field) in fields {
            if let Some(pattern) = pattern {
                let regex = regex::Regex::new(pattern).map_err(|e| {
                    format!("filters.{name}: `{pattern}` is not a valid regular expression: {e}")
                })?;
                compiled.push((field, regex));
            }
        }
        Ok(Matcher(compiled))
    }

    pub fn matches(&self, document: &EventDocument) -> bool {
        self.0
            .iter()
            .all(|(field, regex)| regex.is_match(field(document)))
    }
}

/// CloudEvents 1.0 envelope of a document, `tracer_data` left out (as upstream).
pub fn cloud_event(document: &EventDocument) -> serde_json::Value {
    let mut data = serde_json::to_value(document).unwrap_or_default();
    if let Some(map) = data.as_object_mut() {
        map.remove("tracer_data");
    }
    serde_json::json!({
        "specversion": "1.0",
        "type": "tech.huatuo.kernel.event",
        "source": format!("/huatuo/{}/{}", document.hostname, document.tracer_name),
        "id": document.tracer_id,
        // CloudEvents wants RFC 3339; upstream puts the upload time here too.
        "time": document.uploaded_time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Decrements the client count when the stream is dropped (client gone).
struct ClientSlot;

impl Drop for ClientSlot {
    fn drop(&mut self) {
        CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn error(code: StatusCode, message: String) -> Response {
    super::envelope::error_response(code, message)
}

/// Handles a watch request (`body` may be empty: no filters).
pub fn watch(events: &EventSender, body: &[u8]) -> Response {
    let request: WatchRequest = if body.iter().all(u8::is_ascii_whitespace) {
        WatchRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("malformed watch request: {e}"),
                )
            }
        }
    };
    let matcher = match Matcher::compile(&request.filters) {
        Ok(matcher) => Arc::new(matcher),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if CLIENTS.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
        CLIENTS.fetch_sub(1, Ordering::Relaxed);
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {MAX_CLIENTS} event streams at once"),
        );
    }
    let receiver = events.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, matcher, ClientSlot),
        |(mut receiver, matcher, slot)| async move {
            loop {
                match receiver.recv().await {
                    Ok(document) if matcher.matches(&document) => {
                        let event = Event::default()
                            .id(document.tracer_id.clone())
                            .data(cloud_event(&document).to_string());
                        return Some((Ok::<Event, Infallible>(event), (receiver, matcher, slot)));
                    }
                    Ok(_) => continue,
                    // A slow client misses documents rather than slowing the bus.
                    Err(RecvError::Lagged(missed)) => {
                        metrics::counter!("huatuo_bamai_event_sink_dropped_total", "sink" => "watch")
                            .increment(missed);
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(PING).text("ping"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(tracer: &str, qos: &str) -> EventDocument {
        let mut d =
            EventDocument::new("node-1", "r1", tracer, None, 0, serde_json::json!({"k": 1}));
        d.container_qos = qos.to_string();
        d
    }

    #[test]
    fn filters_are_regexes_on_document_fields() {
        let filters: WatchFilters =
            serde_json::from_str(r#"{"tracer_name":"^(oom|dropwatch)$","container_qos":"burst"}"#)
                .unwrap();
        let m = Matcher::compile(&filters).unwrap();
        assert!(m.matches(&doc("oom", "burstable")));
        assert!(!m.matches(&doc("oom", "guaranteed")));
        assert!(!m.matches(&doc("hungtask", "burstable")));
        assert!(Matcher::compile(&WatchFilters::default())
            .unwrap()
            .matches(&doc("x", "")));
        let bad = WatchFilters {
            region: Some("(".into()),
            ..Default::default()
        };
        assert!(Matcher::compile(&bad)
            .err()
            .unwrap()
            .contains("filters.region"));
    }

    #[test]
    fn cloud_event_envelope_omits_tracer_data() {
        let d = doc("oom", "");
        let e = cloud_event(&d);
        assert_eq!(e["type"], "tech.huatuo.kernel.event");
        assert_eq!(e["source"], "/huatuo/node-1/oom");
        assert_eq!(e["id"], d.tracer_id);
        assert!(e["data"].get("tracer_data").is_none());
        assert_eq!(e["data"]["tracer_name"], "oom");
    }
}
