//! A [`Span`] as an OpenTelemetry span: ids, parent, links and semantic-convention attributes.
//!
//! Both agents of one call derive the same ids from the association key (client port and the
//! request's first TCP sequence number), so a backend joins them with nothing injected:
//! without an incoming `traceparent` the trace id comes from the key, the client span is the
//! root and the server span its child. With a `traceparent` in the request both spans join
//! that trace as children of the caller's span. Either way each span links to its peer.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::conn::{NoResponse, Role, Span};

/// Node identity, carried in span attributes (Phoenix's REST API drops resource attributes).
#[derive(Debug, Clone, Default)]
pub struct SpanOrigin {
    pub host: String,
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

/// splitmix64's finaliser: a fixed, well-mixed function both agents compute alike.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn non_zero(x: u64) -> u64 {
    if x == 0 {
        1
    } else {
        x
    }
}

/// The trace id of a call without a `traceparent`: from the association id alone.
pub fn derived_trace_id(association: u64) -> u128 {
    let high = mix64(association ^ 0x6E65_7474_7261_6365);
    let low = non_zero(mix64(association ^ 0x7472_6163_6569_6421));
    (u128::from(high) << 64) | u128::from(low)
}

/// The span id the `role` side of the call with this association id and trace gets.
pub fn derived_span_id(association: u64, trace_id: u128, role: Role) -> u64 {
    let salt = match role {
        Role::Client => 0x636C_6965_6E74_0000,
        Role::Server => 0x7365_7276_6572_0000,
    };
    non_zero(mix64(
        association ^ mix64(trace_id as u64 ^ (trace_id >> 64) as u64) ^ salt,
    ))
}

/// Trace id, span id, parent span id of `span`.
pub fn ids(span: &Span) -> (u128, u64, u64) {
    let association = span.association_id();
    let traceparent = span.traceparent();
    let trace_id = traceparent.map_or_else(|| derived_trace_id(association), |t| t.trace_id);
    let span_id = derived_span_id(association, trace_id, span.role);
    let parent = match (traceparent, span.role) {
        (Some(t), _) => t.parent_id,
        (None, Role::Client) => 0,
        (None, Role::Server) => derived_span_id(association, trace_id, Role::Client),
    };
    (trace_id, span_id, parent)
}

fn boot_time(boot_ns: u64, now: SystemTime, boot_now_ns: u64) -> SystemTime {
    let ago = Duration::from_nanos(boot_now_ns.saturating_sub(boot_ns));
    now.checked_sub(ago).unwrap_or(now)
}

/// `span` as OTLP span data; `now`/`boot_now_ns` are the same instant on the wall and boot
/// clocks (the kernel stamps boot time).
pub fn span_data(span: &Span, origin: &SpanOrigin, now: SystemTime, boot_now_ns: u64) -> SpanData {
    let (trace_id, span_id, parent) = ids(span);
    let traceparent = span.traceparent();
    let flags = match traceparent {
        Some(t) if !t.sampled => TraceFlags::default(),
        _ => TraceFlags::SAMPLED,
    };
    let context = |id: u64| {
        SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(id),
            flags,
            true,
            TraceState::default(),
        )
    };
    let own = SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        flags,
        false,
        TraceState::default(),
    );
    let peer_role = match span.role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let key = span.association_key();
    let peer_link = Link::new(
        context(derived_span_id(span.association_id(), trace_id, peer_role)),
        vec![KeyValue::new("huatuo.association_key", key.clone())],
        0,
    );
    // SpanLinks is non-exhaustive: filled through its public field.
    let mut links = SpanLinks::default();
    links.links.push(peer_link);
    let name: Cow<'static, str> = match &span.http {
        Some(http) => Cow::Borrowed(http.method),
        None => Cow::Borrowed("tcp request"),
    };
    let status = if span.is_error() {
        let description = match (span.no_response, span.status) {
            (Some(NoResponse::Closed), _) => "connection closed before a response".to_string(),
            (Some(NoResponse::TimedOut), _) => "no response before the timeout".to_string(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => String::new(),
        };
        Status::error(description)
    } else {
        Status::Unset
    };
    SpanData {
        span_context: own,
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: parent != 0,
        span_kind: match span.role {
            Role::Client => SpanKind::Client,
            Role::Server => SpanKind::Server,
        },
        name,
        start_time: boot_time(span.start_ns, now, boot_now_ns),
        end_time: boot_time(span.end_ns, now, boot_now_ns),
        attributes: attributes(span, origin, key),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links,
        status,
        instrumentation_scope: InstrumentationScope::builder("huatuo-bamai/nettrace")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    }
}

fn attributes(span: &Span, origin: &SpanOrigin, key: String) -> Vec<KeyValue> {
    let c = &span.conn;
    let ip_type = if c.remote.is_ipv4() { "ipv4" } else { "ipv6" };
    let (server, server_port, client, client_port) = match span.role {
        Role::Client => (c.remote, c.remote_port, c.local, c.local_port),
        Role::Server => (c.local, c.local_port, c.remote, c.remote_port),
    };
    let mut a = vec![
        KeyValue::new("network.transport", "tcp"),
        KeyValue::new("network.type", ip_type),
        KeyValue::new("network.peer.address", c.remote.to_string()),
        KeyValue::new("network.peer.port", i64::from(c.remote_port)),
        KeyValue::new("network.local.address", c.local.to_string()),
        KeyValue::new("network.local.port", i64::from(c.local_port)),
        // The older names (`net.peer.*`) many backends still index.
        KeyValue::new("net.peer.ip", c.remote.to_string()),
        KeyValue::new("net.peer.port", i64::from(c.remote_port)),
        KeyValue::new("server.address", server.to_string()),
        KeyValue::new("server.port", i64::from(server_port)),
        KeyValue::new("client.address", client.to_string()),
        KeyValue::new("client.port", i64::from(client_port)),
        KeyValue::new("process.pid", i64::from(c.pid)),
        KeyValue::new("thread.id", i64::from(c.tid)),
        KeyValue::new("process.executable.name", c.comm.clone()),
        KeyValue::new("host.name", origin.host.clone()),
        KeyValue::new("huatuo.netns", i64::from(c.netns)),
        KeyValue::new("huatuo.cgroup_id", c.cgroup_id as i64),
        KeyValue::new("huatuo.association_key", key),
        KeyValue::new("huatuo.role", span.role.as_str()),
        KeyValue::new("huatuo.tcp.request_seq", i64::from(span.request_seq)),
        KeyValue::new("huatuo.tcp.srtt_us", i64::from(c.srtt_us)),
        KeyValue::new("huatuo.request.bytes", span.request_bytes as i64),
        KeyValue::new("huatuo.response.bytes", span.response_bytes as i64),
        KeyValue::new("huatuo.duration_ns", span.duration_ns() as i64),
        KeyValue::new(
            "huatuo.trace_source",
            if span.traceparent().is_some() {
                "traceparent"
            } else {
                "tcp_seq"
            },
        ),
    ];
    if let Some(seq) = span.response_seq {
        a.push(KeyValue::new("huatuo.tcp.response_seq", i64::from(seq)));
    }
    if let Some(http) = &span.http {
        a.push(KeyValue::new("network.protocol.name", "http"));
        if !http.version.is_empty() {
            a.push(KeyValue::new(
                "network.protocol.version",
                http.version.clone(),
            ));
        }
        a.push(KeyValue::new("http.request.method", http.method));
        a.push(KeyValue::new("url.path", http.path.clone()));
        if let Some(status) = span.status {
            a.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
    }
    let optional = [
        ("container.id", &origin.container_id),
        ("container.name", &origin.container_name),
        ("k8s.pod.name", &origin.pod_name),
        ("k8s.namespace.name", &origin.pod_namespace),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            a.push(KeyValue::new(name, value.clone()));
        }
    }
    a
}
