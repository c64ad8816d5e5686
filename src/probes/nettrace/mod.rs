//! nettrace: network-centric request tracing from socket syscalls, with nothing injected into
//! the application (DeepFlow's method). The kernel side (nettrace.bpf.c) records every
//! read/write/sendto/recvfrom on a TCP socket (4-tuple, netns, thread, bytes, srtt, syscall
//! times, the TCP sequence number of the first byte, the first `payload_bytes` of the buffer)
//! and each close. Here a connection table pairs each request (its first byte out on a client,
//! in on a server) with its response, infers HTTP/1.x (method, path, status, an incoming W3C
//! `traceparent`) or falls back to generic request/response on TCP, and turns every exchange
//! into a span: RED metrics per service pair (`huatuo_bamai_nettrace_*`) and, with
//! `otlp_endpoint` set, OTLP/HTTP export to a collector. Both sides of one call carry the same
//! association key (client port + the request's first sequence number: the client's
//! write_seq is the server's copied_seq), from which both agents derive the same trace.

mod conn;
mod export;
mod http;
mod otel;
mod record;
mod red;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

pub use conn::{ConnInfo, ConnectionTable, NoResponse, Role, Span, TableLimits};
pub use export::{ExportError, ExportSettings, ExportStats, SpanExport};
pub use http::{parse_request, parse_response, parse_traceparent, HttpRequest, TraceParent};
pub use otel::{derived_span_id, derived_trace_id, ids, span_data, SpanOrigin};
pub use record::{Direction, MessageRecord};
pub use red::{Red, RedMetrics, ServicePair, BUCKETS};

use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::ebpf::{self, Attachment, BpfProgramSet};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{boot_ns_now, EventRing};

const NAME: &str = "nettrace";
const EVENTS_MAP: &str = "NT_EVENTS";
const SUPPRESSED_MAP: &str = "NT_SUPPRESSED";
/// Records handled per tick at most; the rest wait in the ring for the next tick.
const MAX_RECORDS_PER_TICK: usize = 65_536;
/// What the BPF side can capture of one buffer.
pub const MAX_PAYLOAD_BYTES: u32 = 255;

const ATTACHMENTS: [Attachment; 9] = [
    Attachment::syscall("on_enter_write", "sys_enter_write"),
    Attachment::syscall("on_enter_sendto", "sys_enter_sendto"),
    Attachment::syscall("on_enter_read", "sys_enter_read"),
    Attachment::syscall("on_enter_recvfrom", "sys_enter_recvfrom"),
    Attachment::syscall("on_exit_write", "sys_exit_write"),
    Attachment::syscall("on_exit_sendto", "sys_exit_sendto"),
    Attachment::syscall("on_exit_read", "sys_exit_read"),
    Attachment::syscall("on_exit_recvfrom", "sys_exit_recvfrom"),
    Attachment::tp_btf("on_set_state", "inet_sock_set_state"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Tracing: request/response spans of TCP connections from socket syscalls (syscalls
/// sys_enter/exit of read, write, sendto, recvfrom; tp_btf sock/inet_sock_set_state), HTTP/1.x
/// parsed (method, path, status, incoming traceparent) else generic request/response on TCP;
/// RED metrics huatuo_bamai_nettrace_* per service pair, spans exported over OTLP/HTTP to
/// otlp_endpoint. Off by default: it runs on every socket read and write of the host.
pub struct NettraceConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Ring buffer drain period in ms: spans are assembled (and exported) at this pace. The
    /// ring must hold what arrives in one period (4 MiB = 11,400 records: 114,000 a second at
    /// 100 ms, above the rate limit).
    pub interval_ms: u64,
    /// Bytes captured of each buffer for protocol inference (at most 255; 0 = no parsing,
    /// every exchange is generic TCP). Only request and status lines and headers are parsed;
    /// no payload is stored or exported.
    pub payload_bytes: u32,
    /// In-kernel rate limit of records (syscalls) per second (0 = no limit); records over it
    /// are counted in huatuo_bamai_nettrace_records_lost_total{reason="rate_limit"}.
    pub max_events_per_second: u32,
    /// Ring buffer size in KiB (a power of two, at least 4); a full ring loses records
    /// (counted) and the exchanges they belonged to.
    pub ring_buffer_kib: u32,
    /// Connections tracked at most; the least recently active one makes room.
    pub max_connections: usize,
    /// A responded exchange on a connection idle this long (ms) becomes a span; otherwise the
    /// next request or the close ends it.
    pub flush_after_ms: u64,
    /// A request unanswered this long (ms) becomes an error span.
    pub response_timeout_ms: u64,
    /// RED series (role, protocol, service, peer) kept at most; further pairs count under
    /// service="other", peer="other".
    pub max_series: usize,
    /// Connections with this local or remote port are not traced, e.g. a node-local
    /// collector's upstream (a collector's export to its backend would be traced and exported
    /// again: a loop). At most 64.
    pub ignored_ports: Vec<u16>,
    /// OTLP/HTTP (protobuf) traces receiver, e.g. `http://127.0.0.1:4318/v1/traces`; empty =
    /// no export (RED metrics only). Traffic to this endpoint is not traced.
    pub otlp_endpoint: String,
    /// Spans waiting for export at most; more are dropped (counted in
    /// huatuo_bamai_nettrace_otlp_spans_dropped_total{reason="queue_full"}).
    pub otlp_queue_size: usize,
    /// Spans per OTLP request at most.
    pub otlp_batch_size: usize,
    /// A batch is sent when full or this many ms after its first span.
    pub otlp_batch_delay_ms: u64,
    /// Timeout of one OTLP request in ms; a failed batch is dropped (counted).
    pub otlp_timeout_ms: u64,
}

impl Default for NettraceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_ms: 100,
            payload_bytes: MAX_PAYLOAD_BYTES,
            max_events_per_second: 100_000,
            ring_buffer_kib: 4096,
            max_connections: 8192,
            flush_after_ms: 1000,
            response_timeout_ms: 30_000,
            max_series: 512,
            ignored_ports: Vec::new(),
            otlp_endpoint: String::new(),
            otlp_queue_size: 4096,
            otlp_batch_size: 512,
            otlp_batch_delay_ms: 1000,
            otlp_timeout_ms: 5000,
        }
    }
}

fn validate(c: &NettraceConfig) -> Result<(), String> {
    if c.payload_bytes > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "payload_bytes: at most {MAX_PAYLOAD_BYTES}, got {}",
            c.payload_bytes
        ));
    }
    if c.ring_buffer_kib < 4 || !c.ring_buffer_kib.is_power_of_two() {
        return Err(format!(
            "ring_buffer_kib: a power of two >= 4, got {}",
            c.ring_buffer_kib
        ));
    }
    if c.ring_buffer_kib > 1 << 20 {
        return Err("ring_buffer_kib: at most 1048576 (1 GiB)".into());
    }
    for (key, value) in [
        ("max_connections", c.max_connections),
        ("max_series", c.max_series),
        ("otlp_queue_size", c.otlp_queue_size),
        ("otlp_batch_size", c.otlp_batch_size),
    ] {
        if value == 0 {
            return Err(format!("{key}: must be at least 1"));
        }
    }
    if c.ignored_ports.len() > 64 {
        return Err(format!(
            "ignored_ports: at most 64, got {}",
            c.ignored_ports.len()
        ));
    }
    if !c.otlp_endpoint.is_empty() && endpoint_address(&c.otlp_endpoint).is_none() {
        return Err(format!(
            "otlp_endpoint: want http://<ip>:<port>/<path>, got {:?}",
            c.otlp_endpoint
        ));
    }
    Ok(())
}

crate::probe_settings!(NettraceConfig, "nettrace", validate);

/// The `ip:port` of an `http://ip:port/...` endpoint (a host name cannot be matched against
/// connections, so only addresses are accepted).
pub fn endpoint_address(endpoint: &str) -> Option<(IpAddr, u16)> {
    let rest = endpoint.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.parse().ok()?, port.parse().ok()?))
}

/// Counters of what happened to spans and records (cumulative).
#[derive(Debug, Default, Clone, Copy)]
struct SpanCounts {
    client: u64,
    server: u64,
}

pub struct NettraceProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    table: ConnectionTable,
    red: RedMetrics,
    export: Option<SpanExport>,
    /// The agent's own traffic and its collector's are not traced (no feedback loop).
    own_pid: u32,
    collector: Option<(IpAddr, u16)>,
    ignored_ports: Vec<u16>,
    spans: SpanCounts,
}

impl NettraceProbe {
    fn excluded(&self, record: &MessageRecord) -> bool {
        if record.pid == self.own_pid
            || self.ignored_ports.contains(&record.local_port)
            || self.ignored_ports.contains(&record.remote_port)
        {
            return true;
        }
        self.collector.is_some_and(|(ip, port)| {
            let matches = |addr: IpAddr, p: u16| p == port && (addr == ip || ip.is_unspecified());
            matches(record.remote, record.remote_port) || matches(record.local, record.local_port)
        })
    }

    fn origin(&self, span: &Span) -> (SpanOrigin, String) {
        let containers = self.ctx.containers.borrow();
        let container = containers.by_cgroup_id(span.conn.cgroup_id);
        let service = container.map_or_else(|| span.conn.comm.clone(), |c| c.name.clone());
        let origin = SpanOrigin {
            host: self.ctx.hostname.clone(),
            container_id: container.map(|c| c.id.clone()),
            container_name: container.map(|c| c.name.clone()),
            pod_name: container.and_then(|c| c.pod.as_ref().map(|p| p.name.clone())),
            pod_namespace: container.and_then(|c| c.pod.as_ref().map(|p| p.namespace.clone())),
        };
        (origin, service)
    }
}

impl Probe for NettraceProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::METRICS;
    type Settings = NettraceConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let globals = [
            (
                "payload_bytes",
                settings.payload_bytes.min(MAX_PAYLOAD_BYTES),
            ),
            ("max_per_sec", settings.max_events_per_second),
        ];
        let ring_bytes = settings.ring_buffer_kib.saturating_mul(1024);
        let bpf = ebpf::load_sized(
            NAME,
            crate::bpf_object!("nettrace"),
            &globals,
            &[],
            &[(EVENTS_MAP, ring_bytes)],
        )?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        let export = if settings.otlp_endpoint.is_empty() {
            None
        } else {
            let export = SpanExport::start(ExportSettings {
                endpoint: settings.otlp_endpoint.clone(),
                queue_size: settings.otlp_queue_size,
                batch_size: settings.otlp_batch_size,
                batch_delay: Duration::from_millis(settings.otlp_batch_delay_ms),
                timeout: Duration::from_millis(settings.otlp_timeout_ms),
                host: ctx.hostname.clone(),
            })
            .map_err(|e| ProbeError::Unsupported {
                probe: NAME,
                reason: e.to_string(),
            })?;
            Some(export)
        };
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            table: ConnectionTable::new(TableLimits {
                max_connections: settings.max_connections,
                flush_after_ns: settings.flush_after_ms.saturating_mul(1_000_000),
                response_timeout_ns: settings.response_timeout_ms.saturating_mul(1_000_000),
            }),
            red: RedMetrics::new(settings.max_series),
            export,
            own_pid: std::process::id(),
            collector: endpoint_address(&settings.otlp_endpoint),
            ignored_ports: settings.ignored_ports.clone(),
            spans: SpanCounts::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self.ring.drain(MAX_RECORDS_PER_TICK, MessageRecord::decode);
        let mut spans = Vec::new();
        for record in &records {
            if !self.excluded(record) {
                self.table.observe(record, &mut spans);
            }
        }
        let boot_now = boot_ns_now().unwrap_or(0);
        let wall_now = SystemTime::now();
        self.table.expire(boot_now, &mut spans);
        for span in &spans {
            let (origin, service) = self.origin(span);
            self.red.record(ServicePair::of(span, service), span);
            match span.role {
                Role::Client => self.spans.client += 1,
                Role::Server => self.spans.server += 1,
            }
            if let Some(export) = &self.export {
                export.offer(span_data(span, &origin, wall_now, boot_now));
            }
        }
        self.ring
            .account_losses(NAME, &self.programs, SUPPRESSED_MAP, 1)?;
        self.red.export(out);
        out.counter(
            "huatuo_bamai_nettrace_spans_total",
            "Spans assembled (one per request/response exchange and side), per role; cumulative.",
        )
        .push(vec![("role", "client".into())], self.spans.client as f64)
        .push(vec![("role", "server".into())], self.spans.server as f64);
        out.gauge(
            "huatuo_bamai_nettrace_connections",
            "TCP connections being tracked (bounded by nettrace.max_connections).",
        )
        .push(vec![], self.table.len() as f64);
        out.counter(
            "huatuo_bamai_nettrace_connections_evicted_total",
            "Tracked connections dropped to make room (nettrace.max_connections); cumulative.",
        )
        .push(vec![], self.table.evicted_total as f64);
        let rate_limited = self.programs.per_cpu_sum(SUPPRESSED_MAP, 0)?;
        let ring_full = self.programs.per_cpu_sum(SUPPRESSED_MAP, 1)?;
        out.counter(
            "huatuo_bamai_nettrace_records_lost_total",
            "Socket records the kernel side could not queue: over nettrace.max_events_per_second (rate_limit) or no room in the ring buffer (ring_full); cumulative.",
        )
        .push(vec![("reason", "rate_limit".into())], rate_limited as f64)
        .push(vec![("reason", "ring_full".into())], ring_full as f64);
        if let Some(export) = &self.export {
            use std::sync::atomic::Ordering::Relaxed;
            let stats = &export.stats;
            out.counter(
                "huatuo_bamai_nettrace_otlp_spans_exported_total",
                "Spans the OTLP collector accepted; cumulative.",
            )
            .push(vec![], stats.exported.load(Relaxed) as f64);
            out.counter(
                "huatuo_bamai_nettrace_otlp_spans_dropped_total",
                "Spans lost on the way to the collector: the export queue was full (queue_full) or the collector did not take the batch (export_failed); cumulative.",
            )
            .push(
                vec![("reason", "queue_full".into())],
                stats.dropped_queue_full.load(Relaxed) as f64,
            )
            .push(
                vec![("reason", "export_failed".into())],
                stats.dropped_export_failed.load(Relaxed) as f64,
            );
        }
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

#[cfg(test)]
mod tests;
