//! Unit tests of nettrace's pure parts: record decoding (bytes laid out as nettrace.bpf.c's
//! `struct msg_event`), HTTP/1 inference, request/response pairing, the ids both sides
//! derive, RED aggregation and the config checks.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::config::Section;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

struct Raw {
    dir: u8,
    sk: u64,
    enter_ns: u64,
    exit_ns: u64,
    seq: u32,
    bytes: u32,
    local: ([u8; 4], u16),
    remote: ([u8; 4], u16),
    payload: Vec<u8>,
}

/// Bytes of one `struct msg_event` (offsets from the C header comment).
fn encode(r: &Raw) -> Vec<u8> {
    let mut b = vec![0u8; MessageRecord::SIZE];
    b[0..8].copy_from_slice(&r.enter_ns.to_le_bytes());
    b[8..16].copy_from_slice(&r.exit_ns.to_le_bytes());
    b[16..24].copy_from_slice(&77u64.to_le_bytes());
    b[24..32].copy_from_slice(&r.sk.to_le_bytes());
    b[32..36].copy_from_slice(&4242u32.to_le_bytes());
    b[36..40].copy_from_slice(&4243u32.to_le_bytes());
    b[40..44].copy_from_slice(&4026531840u32.to_le_bytes());
    b[44..48].copy_from_slice(&r.seq.to_le_bytes());
    b[48..52].copy_from_slice(&r.bytes.to_le_bytes());
    b[52..56].copy_from_slice(&35u32.to_le_bytes());
    b[56..58].copy_from_slice(&2u16.to_le_bytes());
    b[58..60].copy_from_slice(&r.local.1.to_le_bytes());
    b[60..62].copy_from_slice(&r.remote.1.to_le_bytes());
    b[62] = r.dir;
    b[63] = r.payload.len() as u8;
    b[64..68].copy_from_slice(&r.local.0);
    b[80..84].copy_from_slice(&r.remote.0);
    b[96..103].copy_from_slice(b"python3");
    b[112..112 + r.payload.len()].copy_from_slice(&r.payload);
    b
}

fn record(r: Raw) -> MessageRecord {
    MessageRecord::decode(&encode(&r)).expect("decodes")
}

/// A message on the client's socket (local = client:40000, remote = server:80).
fn client_msg(dir: u8, enter_ns: u64, exit_ns: u64, seq: u32, payload: &[u8]) -> MessageRecord {
    record(Raw {
        dir,
        sk: 0xffff_0001,
        enter_ns,
        exit_ns,
        seq,
        bytes: payload.len().max(1) as u32,
        local: (CLIENT, 40000),
        remote: (SERVER, 80),
        payload: payload.to_vec(),
    })
}

/// The same bytes seen on the server's socket.
fn server_msg(dir: u8, enter_ns: u64, exit_ns: u64, seq: u32, payload: &[u8]) -> MessageRecord {
    record(Raw {
        dir,
        sk: 0xffff_0002,
        enter_ns,
        exit_ns,
        seq,
        bytes: payload.len().max(1) as u32,
        local: (SERVER, 80),
        remote: (CLIENT, 40000),
        payload: payload.to_vec(),
    })
}

const SEND: u8 = 0;
const RECV: u8 = 1;
const CLOSE: u8 = 2;
const REQUEST: &[u8] = b"GET /api/items?id=3 HTTP/1.1\r\nHost: b\r\nTraceParent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno";

fn limits() -> TableLimits {
    TableLimits {
        max_connections: 4,
        flush_after_ns: 1_000_000_000,
        response_timeout_ns: 30_000_000_000,
    }
}

#[test]
fn records_decode_at_the_c_offsets_and_short_ones_are_rejected() {
    let r = client_msg(SEND, 100, 150, 7, REQUEST);
    assert_eq!(r.direction, Direction::Send);
    assert_eq!((r.enter_ns, r.exit_ns, r.seq), (100, 150, 7));
    assert_eq!(
        (r.cgroup_id, r.pid, r.tid, r.netns),
        (77, 4242, 4243, 4026531840)
    );
    assert_eq!(r.local, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!((r.local_port, r.remote_port), (40000, 80));
    assert_eq!(r.remote, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(r.srtt_us, 35);
    assert_eq!(r.comm, "python3");
    assert_eq!(r.payload, REQUEST);
    // A send's message time is its sys_enter, a receive's its sys_exit.
    assert_eq!(r.message_ns(), 100);
    assert_eq!(client_msg(RECV, 100, 150, 7, b"x").message_ns(), 150);
    let bytes = encode(&Raw {
        dir: SEND,
        sk: 1,
        enter_ns: 0,
        exit_ns: 0,
        seq: 0,
        bytes: 1,
        local: (CLIENT, 1),
        remote: (SERVER, 2),
        payload: vec![],
    });
    assert!(MessageRecord::decode(&bytes[..MessageRecord::SIZE - 1]).is_none());
    let mut bad_dir = bytes.clone();
    bad_dir[62] = 9;
    assert!(MessageRecord::decode(&bad_dir).is_none());
    // A v4 peer of a dual-stack (AF_INET6) socket is shown as the v4 address.
    let mut mapped = bytes;
    mapped[56..58].copy_from_slice(&10u16.to_le_bytes());
    mapped[80..96].copy_from_slice(&Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped().octets());
    let r = MessageRecord::decode(&mapped).unwrap();
    assert_eq!(r.remote, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));
}

#[test]
fn http_request_lines_statuses_and_traceparent_are_parsed() {
    let r = parse_request(REQUEST).unwrap();
    assert_eq!(
        (r.method, r.path.as_str(), r.version.as_str()),
        ("GET", "/api/items", "1.1")
    );
    let tp = r.traceparent.unwrap();
    assert_eq!(tp.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
    assert_eq!(tp.parent_id, 0xb7ad6b7169203331);
    assert!(tp.sampled);
    // Cut by the capture bound inside the target or the version: still HTTP.
    let cut = parse_request(b"POST /upload/very/lo").unwrap();
    assert_eq!(
        (cut.method, cut.path.as_str(), cut.version.as_str()),
        ("POST", "/upload/very/lo", "")
    );
    assert_eq!(parse_request(b"PUT /x HTTP/1").unwrap().version, "");
    for not_http in [
        &b"GETX / HTTP/1.1\r\n"[..],
        b"GET / SMTP/1.0\r\n",
        b"\x16\x03\x01\x02\x00",
        b"get / HTTP/1.1\r\n",
        b"GET\r\n",
    ] {
        assert_eq!(parse_request(not_http), None, "{not_http:?}");
    }
    assert_eq!(parse_response(RESPONSE).unwrap().status, 503);
    assert_eq!(parse_response(b"HTTP/1.0 200\r\n").unwrap().status, 200);
    assert_eq!(parse_response(b"HTTP/1.1 20"), None);
    assert_eq!(parse_response(b"HTTP/1.1 2000 OK"), None);
    assert_eq!(parse_response(b"HTTP/2 200"), None);
    // Invalid trace contexts are ignored (W3C: all-zero ids, upper case, wrong lengths, ff).
    for bad in [
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ] {
        assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
    }
    let unsampled =
        parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
    assert!(!unsampled.sampled);
}

#[test]
fn client_and_server_sides_pair_each_request_with_its_response() {
    let mut client = ConnectionTable::new(limits());
    let mut server = ConnectionTable::new(limits());
    let mut spans = Vec::new();
    // Call 1: the request in one write, the response in two reads.
    client.observe(&client_msg(SEND, 1_000, 1_010, 5000, REQUEST), &mut spans);
    server.observe(&server_msg(RECV, 500, 1_200, 5000, REQUEST), &mut spans);
    server.observe(&server_msg(SEND, 9_000, 9_020, 800, RESPONSE), &mut spans);
    server.observe(&server_msg(SEND, 9_030, 9_040, 900, b"tail"), &mut spans);
    client.observe(&client_msg(RECV, 1_020, 9_500, 800, RESPONSE), &mut spans);
    client.observe(&client_msg(RECV, 9_600, 9_700, 900, b"tail"), &mut spans);
    assert!(spans.is_empty(), "no span before the exchange ends");
    // Call 2 ends call 1 on each side.
    let request2 = b"POST /b HTTP/1.1\r\n\r\n";
    client.observe(
        &client_msg(SEND, 20_000, 20_010, 6000, request2),
        &mut spans,
    );
    server.observe(&server_msg(RECV, 9_100, 20_300, 6000, request2), &mut spans);
    assert_eq!(spans.len(), 2);
    let (c, s) = (&spans[0], &spans[1]);
    assert_eq!((c.role, s.role), (Role::Client, Role::Server));
    // Client: request sent (sys_enter) → response's first bytes read (sys_exit).
    assert_eq!((c.start_ns, c.end_ns), (1_000, 9_500));
    // Server: request read (sys_exit) → response handed to the kernel (sys_enter).
    assert_eq!((s.start_ns, s.end_ns), (1_200, 9_000));
    assert_eq!(
        (c.request_bytes, c.response_bytes),
        (REQUEST.len() as u64, RESPONSE.len() as u64 + 4)
    );
    assert_eq!(s.response_bytes, c.response_bytes);
    for span in [c, s] {
        assert_eq!(span.request_seq, 5000);
        assert_eq!(span.response_seq, Some(800));
        assert_eq!(span.status, Some(503));
        assert_eq!(span.http.as_ref().unwrap().path, "/api/items");
        assert_eq!(span.client_port(), 40000);
        assert_eq!(span.association_key(), "9c4000001388");
        assert!(span.traceparent().is_some());
    }
    assert_eq!(c.association_id(), s.association_id());
    // 503: an error on both sides (>= 400 client, >= 500 server).
    assert!(c.is_error() && s.is_error());
    // Call 2 has no response when the connection closes: an error span ended by the close.
    spans.clear();
    client.observe(&client_msg(CLOSE, 30_000, 30_000, 0, b""), &mut spans);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].no_response, Some(NoResponse::Closed));
    assert_eq!((spans[0].start_ns, spans[0].end_ns), (20_000, 30_000));
    assert!(spans[0].is_error());
    assert!(client.is_empty());
}

#[test]
fn an_interim_100_continue_is_not_the_response() {
    let mut table = ConnectionTable::new(limits());
    let mut spans = Vec::new();
    let headers = b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    table.observe(&client_msg(SEND, 0, 1, 10, headers), &mut spans);
    table.observe(
        &client_msg(RECV, 1, 100, 20, b"HTTP/1.1 100 Continue\r\n\r\n"),
        &mut spans,
    );
    table.observe(&client_msg(SEND, 200, 201, 80, b"body"), &mut spans);
    table.observe(
        &client_msg(RECV, 201, 900, 45, b"HTTP/1.1 201 Created\r\n\r\n"),
        &mut spans,
    );
    table.observe(&client_msg(CLOSE, 1000, 1000, 0, b""), &mut spans);
    assert_eq!(spans.len(), 1, "one exchange: {spans:#?}");
    let span = &spans[0];
    assert_eq!(
        (span.status, span.start_ns, span.end_ns),
        (Some(201), 0, 900)
    );
    assert_eq!(span.request_bytes, headers.len() as u64 + 4);
    assert_eq!(span.response_seq, Some(45));
}

#[test]
fn generic_tcp_roles_come_from_ports_else_from_who_sends_first() {
    let mut table = ConnectionTable::new(limits());
    let mut spans = Vec::new();
    // A binary protocol: the side on the low port that receives first is the server.
    let mut request = server_msg(RECV, 0, 100, 1, b"\x00\x01ping");
    request.local_port = 6379;
    request.remote_port = 51000;
    let mut reply = server_msg(SEND, 300, 310, 9, b"\x00\x01pong");
    reply.local_port = 6379;
    reply.remote_port = 51000;
    table.observe(&request, &mut spans);
    table.observe(&reply, &mut spans);
    table.observe(
        &client_msg(CLOSE, 400, 400, 0, b"").with_sk(request.sk),
        &mut spans,
    );
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(
        (span.role, span.protocol(), span.http.is_none()),
        (Role::Server, "tcp", true)
    );
    assert_eq!(span.status, None);
    assert!(!span.is_error());
    assert_eq!(span.client_port(), 51000);
    // Both ports ephemeral: the first sender is the client.
    let mut table = ConnectionTable::new(limits());
    let mut first = client_msg(SEND, 0, 1, 1, b"hello");
    first.local_port = 40001;
    first.remote_port = 40002;
    table.observe(&first, &mut spans);
    let mut answer = client_msg(RECV, 2, 3, 2, b"world");
    answer.local_port = 40001;
    answer.remote_port = 40002;
    table.observe(&answer, &mut spans);
    spans.clear();
    table.expire(2_000_000_000, &mut spans);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].role, Role::Client);
}

trait WithSk {
    fn with_sk(self, sk: u64) -> Self;
}

impl WithSk for MessageRecord {
    fn with_sk(mut self, sk: u64) -> Self {
        self.sk = sk;
        self
    }
}

#[test]
fn idle_flush_timeouts_eviction_and_socket_reuse() {
    let mut table = ConnectionTable::new(limits());
    let mut spans = Vec::new();
    table.observe(&client_msg(SEND, 0, 10, 1, REQUEST), &mut spans);
    table.observe(&client_msg(RECV, 10, 1_000, 2, RESPONSE), &mut spans);
    // Responded, but not idle long enough yet.
    table.expire(500_000_000, &mut spans);
    assert!(spans.is_empty());
    table.expire(1_000_001_000, &mut spans);
    assert_eq!(spans.len(), 1, "flushed after flush_after of idleness");
    assert_eq!(table.len(), 1, "the connection itself stays");
    // An unanswered request times out as an error span.
    spans.clear();
    table.observe(
        &client_msg(SEND, 2_000_000_000, 2_000_000_010, 3, REQUEST),
        &mut spans,
    );
    table.expire(32_000_000_000, &mut spans);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].no_response, Some(NoResponse::TimedOut));
    assert_eq!(spans[0].end_ns, 32_000_000_000);
    // The idle connection is forgotten after the response timeout.
    table.expire(70_000_000_000, &mut spans);
    assert!(table.is_empty());

    // Bounded: a fifth connection evicts the least recently active one.
    let mut table = ConnectionTable::new(limits());
    for sk in 1..=5u64 {
        table.observe(
            &client_msg(SEND, sk, sk * 10, 1, REQUEST).with_sk(sk),
            &mut spans,
        );
    }
    assert_eq!(table.len(), 4);
    assert_eq!(table.evicted_total, 1);

    // A socket address reused by a new connection (its close was lost) starts afresh.
    let mut table = ConnectionTable::new(limits());
    spans.clear();
    table.observe(&client_msg(SEND, 0, 1, 1, REQUEST), &mut spans);
    table.observe(&client_msg(RECV, 1, 2, 2, RESPONSE), &mut spans);
    let mut reused = client_msg(RECV, 5, 6, 100, REQUEST);
    reused.local_port = 8080;
    reused.remote_port = 50000;
    table.observe(&reused, &mut spans);
    assert_eq!(spans.len(), 1, "the old connection's exchange is flushed");
    assert_eq!(spans[0].role, Role::Client);
    table.observe(&client_msg(CLOSE, 9, 9, 0, b""), &mut spans);
    assert_eq!(spans.len(), 2);
    assert_eq!(
        spans[1].role,
        Role::Server,
        "the new connection got its own role"
    );
}

#[test]
fn both_sides_derive_one_trace_and_honour_a_traceparent() {
    let mut client = ConnectionTable::new(limits());
    let mut server = ConnectionTable::new(limits());
    let mut spans = Vec::new();
    let plain = b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n";
    client.observe(&client_msg(SEND, 0, 1, 77, plain), &mut spans);
    client.observe(&client_msg(RECV, 1, 50, 88, RESPONSE), &mut spans);
    client.observe(&client_msg(CLOSE, 60, 60, 0, b""), &mut spans);
    server.observe(&server_msg(RECV, 0, 10, 77, plain), &mut spans);
    server.observe(&server_msg(SEND, 40, 41, 88, RESPONSE), &mut spans);
    server.observe(&server_msg(CLOSE, 60, 60, 0, b""), &mut spans);
    let (c, s) = (ids(&spans[0]), ids(&spans[1]));
    assert_eq!(c.0, s.0, "one trace id");
    assert_eq!(c.0, derived_trace_id(spans[0].association_id()));
    assert_ne!(c.1, s.1, "two span ids");
    assert_eq!(c.2, 0, "the client span is the root");
    assert_eq!(s.2, c.1, "the server span is its child");
    // Another call on another port or sequence number is another trace.
    let mut other = spans[0].clone();
    other.request_seq += 1;
    assert_ne!(ids(&other).0, c.0);

    // With a traceparent both join the caller's trace under the caller's span.
    spans.clear();
    client.observe(&client_msg(SEND, 0, 1, 90, REQUEST), &mut spans);
    client.observe(&client_msg(RECV, 1, 50, 91, RESPONSE), &mut spans);
    client.observe(&client_msg(CLOSE, 60, 60, 0, b""), &mut spans);
    server.observe(&server_msg(RECV, 0, 10, 90, REQUEST), &mut spans);
    server.observe(&server_msg(SEND, 40, 41, 91, RESPONSE), &mut spans);
    server.observe(&server_msg(CLOSE, 60, 60, 0, b""), &mut spans);
    let (c, s) = (ids(&spans[0]), ids(&spans[1]));
    assert_eq!(
        (c.0, s.0),
        (
            0x0af7651916cd43dd8448eb211c80319c,
            0x0af7651916cd43dd8448eb211c80319c
        )
    );
    assert_eq!((c.2, s.2), (0xb7ad6b7169203331, 0xb7ad6b7169203331));

    // The OTLP span: kind, times, semantic-convention attributes and the link to the peer.
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let origin = SpanOrigin {
        host: "node-b".into(),
        container_id: Some("c0ffee".into()),
        pod_name: Some("api-0".into()),
        ..SpanOrigin::default()
    };
    let data = span_data(&spans[1], &origin, now, 1_000);
    assert_eq!(data.span_kind, opentelemetry::trace::SpanKind::Server);
    assert_eq!(data.name, "GET");
    assert_eq!(
        data.end_time.duration_since(data.start_time).unwrap(),
        Duration::from_nanos(30)
    );
    assert_eq!(
        now.duration_since(data.end_time).unwrap(),
        Duration::from_nanos(1_000 - 40)
    );
    let attr = |key: &str| {
        data.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr("url.path").as_deref(), Some("/api/items"));
    assert_eq!(attr("http.response.status_code").as_deref(), Some("503"));
    assert_eq!(attr("server.port").as_deref(), Some("80"));
    assert_eq!(attr("client.address").as_deref(), Some("10.0.0.1"));
    assert_eq!(attr("net.peer.port").as_deref(), Some("40000"));
    assert_eq!(attr("container.id").as_deref(), Some("c0ffee"));
    assert_eq!(attr("k8s.pod.name").as_deref(), Some("api-0"));
    assert_eq!(attr("host.name").as_deref(), Some("node-b"));
    assert_eq!(attr("huatuo.trace_source").as_deref(), Some("traceparent"));
    assert_eq!(
        attr("huatuo.association_key"),
        Some(spans[1].association_key())
    );
    assert_eq!(data.links.links.len(), 1);
    assert_eq!(
        u64::from_be_bytes(data.links.links[0].span_context.span_id().to_bytes()),
        c.1,
        "the server span links to the client span"
    );
    assert!(matches!(
        data.status,
        opentelemetry::trace::Status::Error { .. }
    ));
}

#[test]
fn red_metrics_count_errors_bucket_durations_and_bound_series() {
    let mut table = ConnectionTable::new(limits());
    let mut spans = Vec::new();
    table.observe(&client_msg(SEND, 0, 1, 1, REQUEST), &mut spans);
    table.observe(&client_msg(RECV, 1, 3_000_000, 2, RESPONSE), &mut spans);
    table.observe(&client_msg(CLOSE, 5_000_000, 5_000_000, 0, b""), &mut spans);
    let span = spans.pop().unwrap();
    let mut red = RedMetrics::new(2);
    let pair = ServicePair::of(&span, "frontend".into());
    assert_eq!(pair.peer, "10.0.0.2:80");
    red.record(pair.clone(), &span);
    red.record(pair.clone(), &span);
    let got = red.get(&pair).unwrap();
    assert_eq!((got.requests, got.errors), (2, 2));
    // 3 ms falls in the (2.5 ms, 5 ms] bucket.
    let bucket = BUCKETS.iter().position(|b| *b == 0.005).unwrap();
    assert_eq!(got.buckets[bucket], 2);
    assert!((got.sum_seconds - 0.006).abs() < 1e-9);
    // Series beyond max_series share service/peer "other".
    for peer in ["b", "c", "d"] {
        let mut p = pair.clone();
        p.peer = peer.into();
        red.record(p, &span);
    }
    let other = ServicePair {
        service: "other".into(),
        peer: "other".into(),
        ..pair.clone()
    };
    assert_eq!(red.get(&other).unwrap().requests, 2);
    let mut out = MetricSet::default();
    red.export(&mut out);
    let names: Vec<_> = out.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "huatuo_bamai_nettrace_requests_total",
            "huatuo_bamai_nettrace_errors_total",
            "huatuo_bamai_nettrace_duration_seconds"
        ]
    );
}

#[test]
fn config_defaults_validate_and_bad_values_are_rejected() {
    assert!(NettraceConfig::default().validate().is_ok());
    assert!(!NettraceConfig::default().enabled, "off by default");
    let bad = |edit: fn(&mut NettraceConfig)| {
        let mut c = NettraceConfig::default();
        edit(&mut c);
        c.validate().unwrap_err().reason
    };
    assert!(bad(|c| c.payload_bytes = 256).contains("payload_bytes"));
    assert!(bad(|c| c.ring_buffer_kib = 3000).contains("ring_buffer_kib"));
    assert!(bad(|c| c.otlp_queue_size = 0).contains("otlp_queue_size"));
    assert!(bad(|c| c.ignored_ports = (1..=65).collect()).contains("ignored_ports"));
    assert!(bad(|c| c.otlp_endpoint = "collector:4318".into()).contains("otlp_endpoint"));
    assert_eq!(
        endpoint_address("http://127.0.0.1:4318/v1/traces"),
        Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 4318))
    );
    assert_eq!(
        endpoint_address("http://[::1]:4318/v1/traces"),
        Some(("::1".parse().unwrap(), 4318))
    );
    assert_eq!(endpoint_address("https://127.0.0.1:4318/v1/traces"), None);
}
