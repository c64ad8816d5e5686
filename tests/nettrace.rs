//! nettrace against the real kernel and a real OpenTelemetry backend, as root: two network
//! namespaces joined by a veth pair stand for two nodes, an HTTP server (python3) in B, a
//! client in A making 100 requests (keep-alive and one connection per request, GET and POST,
//! 200/404/500, some with a W3C traceparent). The agent, watching both, exports OTLP/HTTP
//! through a rotel collector to Arize Phoenix; the test reads the spans back through Phoenix's REST API and checks them
//! against what the client did and measured, and the RED metrics on /metrics.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::{bpf_available, free_port, run, sample, Agent, TestContainer};

const REQUESTS: usize = 100;
/// Container discovery from the cgroup tree only (TestContainer's `docker/<id>` cgroups).
const DISCOVERY: &str =
    "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";
/// Both tests build the same namespaces and veth names: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const SERVER_PORT: u16 = 8089;

/// Paths: `/sleep/<ms>/<n>` answers 200 after ms; `/status/<code>/<ms>/<n>` answers that code
/// after ms: the server's own time, which its span must cover.
/// HTTP/1.1 keep-alive with Content-Length, a thread per connection.
const SERVER: &str = r#"
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        parts = self.path.split("/")
        code = 200
        if parts[1] == "sleep": time.sleep(int(parts[2]) / 1000.0)
        elif parts[1] == "status":
            code = int(parts[2])
            time.sleep(int(parts[3]) / 1000.0)
        body = b"x" * 64
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = handle_any
    do_POST = handle_any
s = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("ready", flush=True)
s.serve_forever()
"#;

/// The phoenix launcher: `$HUATUO_PHOENIX`, the venv scripts/install-deps.sh creates, or PATH.
fn phoenix_binary(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HUATUO_PHOENIX").map(PathBuf::from),
        Some(PathBuf::from("/opt/phoenix/bin/phoenix")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .or_else(|| {
            let out = Command::new("sh")
                .args(["-c", "command -v phoenix"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        });
    if found.is_none() {
        let why = "Arize Phoenix is not installed (scripts/install-deps.sh test)";
        if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() {
            panic!("{test}: {why}");
        }
        eprintln!("SKIP {test}: {why}");
    }
    found
}

/// rotel's collector binary inside its wheel, installed beside Phoenix (`/opt/phoenix`).
fn rotel_binary(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os("HUATUO_PHOENIX")
        .map(|p| PathBuf::from(p).with_file_name("python3"))
        .unwrap_or_else(|| PathBuf::from("/opt/phoenix/bin/python3"));
    let out = Command::new(&python)
        .args([
            "-c",
            "import rotel, os; print(os.path.dirname(rotel.__file__))",
        ])
        .output()
        .ok();
    let path = out
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("rotel-agent"))
        .filter(|p| p.exists());
    if path.is_none() {
        let why = "rotel is not installed (scripts/install-deps.sh test)";
        if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() {
            panic!("{test}: {why}");
        }
        eprintln!("{test}: {why}; exporting to Phoenix directly");
    }
    path
}

/// A rotel collector receiving OTLP/HTTP and forwarding to Phoenix; killed on drop.
struct Rotel {
    child: Child,
    port: u16,
}

impl Rotel {
    fn start(bin: &PathBuf, phoenix_port: u16) -> Rotel {
        let port = free_port();
        let grpc_port = free_port();
        let mut child = Command::new(bin)
            .arg("start")
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{port}")])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc_port}")])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "http"])
            .args([
                "--otlp-exporter-endpoint",
                &format!("http://127.0.0.1:{phoenix_port}"),
            ])
            .args(["--batch-timeout", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rotel");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rotel exited: {status}");
            }
            assert!(Instant::now() < deadline, "rotel did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Rotel { child, port }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Phoenix server with a fresh working directory; killed on drop.
struct Phoenix {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Phoenix {
    fn start(bin: &PathBuf) -> Phoenix {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let grpc_port = free_port();
        let log = std::fs::File::create(dir.path().join("phoenix.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .env("PHOENIX_WORKING_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn phoenix");
        let mut phoenix = Phoenix {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = phoenix.child.try_wait() {
                panic!("phoenix exited ({status}): {}", phoenix.log());
            }
            if matches!(common::http_get(port, "/healthz"), Ok((200, _))) {
                return phoenix;
            }
            assert!(
                Instant::now() < deadline,
                "phoenix not healthy: {}",
                phoenix.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("phoenix.log")).unwrap_or_default()
    }

    /// Every span of the default project, through the REST API's pages.
    fn spans(&self) -> Vec<serde_json::Value> {
        let client = reqwest::blocking::Client::new();
        let mut spans = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!(
                "http://127.0.0.1:{}/v1/projects/default/spans?limit=1000",
                self.port
            );
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Ok(response) = client.get(&url).send() else {
                return spans;
            };
            let Ok(page) = response.json::<serde_json::Value>() else {
                return spans;
            };
            if let Some(data) = page["data"].as_array() {
                spans.extend(data.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return spans,
            }
        }
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two namespaces joined by a veth pair: A at `.1`, B at `.2` of a /24.
struct TwoNodes {
    a: Netns,
    b: Netns,
    a_ip: String,
    b_ip: String,
}

impl TwoNodes {
    fn create() -> TwoNodes {
        let a = Netns::create("nta");
        let b = Netns::create("ntb");
        let tag = std::process::id() % 100_000;
        let (veth_a, veth_b) = (format!("nta{tag}"), format!("ntb{tag}"));
        let net = 10 + tag % 200;
        let (a_ip, b_ip) = (format!("10.231.{net}.1"), format!("10.231.{net}.2"));
        run(
            "ip",
            &[
                "link", "add", &veth_a, "netns", &a.name, "type", "veth", "peer", "name", &veth_b,
                "netns", &b.name,
            ],
        );
        a.run(
            "ip",
            &["addr", "add", &format!("{a_ip}/24"), "dev", &veth_a],
        );
        b.run(
            "ip",
            &["addr", "add", &format!("{b_ip}/24"), "dev", &veth_b],
        );
        a.run("ip", &["link", "set", &veth_a, "up"]);
        b.run("ip", &["link", "set", &veth_b, "up"]);
        TwoNodes { a, b, a_ip, b_ip }
    }
}

/// The python3 server in namespace B; killed on drop.
struct Server(Child);

impl Server {
    /// `ip netns exec` execs in place: the child's pid is python's.
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn start(nodes: &TwoNodes) -> Server {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &nodes.b.name,
                "python3",
                "-u",
                "-c",
                SERVER,
            ])
            .args([&nodes.b_ip, &SERVER_PORT.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3 server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "server did not start");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request the client made and what it saw.
#[derive(Debug, Clone)]
struct Call {
    method: &'static str,
    path: String,
    status: u16,
    /// The server's handler sleeps this long.
    sleep_ms: u64,
    /// First byte of the request written → first byte of the response read.
    measured: Duration,
    client_port: u16,
    traceparent: Option<(String, String)>,
}

/// Writes one request and reads its whole response, timing first byte out to first byte in.
fn call(stream: &mut TcpStream, host: &str, i: usize) -> Call {
    let method = if i % 3 == 2 { "POST" } else { "GET" };
    // 10..30 ms: a scheduling delay of the loaded test machine between the clock read and
    // the syscall stays well inside 10 %.
    let ms = 10 + (i % 5) * 5;
    let path = match i % 10 {
        7 => format!("/status/404/{ms}/{i}"),
        9 => format!("/status/500/{ms}/{i}"),
        _ => format!("/sleep/{ms}/{i}"),
    };
    let traceparent = (i % 4 == 1).then(|| {
        (
            format!(
                "{:032x}",
                0x4e45_5454_5241_4345_u128 << 64 | (i as u128 + 1)
            ),
            format!("{:016x}", 0xabc0_0000_u64 + i as u64),
        )
    });
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some((trace, parent)) = &traceparent {
        request.push_str(&format!("traceparent: 00-{trace}-{parent}-01\r\n"));
    }
    let body = if method == "POST" { "{\"n\":1}" } else { "" };
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let start = Instant::now();
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut n = stream.read(&mut buf).unwrap();
    let measured = start.elapsed();
    // The rest of the response: headers, then Content-Length bytes of body.
    loop {
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if rest.len() >= length {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return Call {
                    method,
                    path,
                    status,
                    sleep_ms: ms as u64,
                    measured,
                    client_port: stream.local_addr().unwrap().port(),
                    traceparent,
                };
            }
        }
        if n == buf.len() {
            buf.resize(n * 2, 0);
        }
        let more = stream.read(&mut buf[n..]).unwrap();
        assert!(more > 0, "server closed mid-response");
        n += more;
    }
}

/// 100 calls from namespace A: the first half over one keep-alive connection, the second half
/// one connection each.
fn client_calls(nodes: &TwoNodes) -> Vec<Call> {
    let server = format!("{}:{SERVER_PORT}", nodes.b_ip);
    nodes.a.in_thread(move || {
        let mut calls = Vec::new();
        let mut keep_alive = TcpStream::connect(&server).unwrap();
        keep_alive.set_nodelay(true).unwrap();
        for i in 0..REQUESTS / 2 {
            calls.push(call(&mut keep_alive, &server, i));
        }
        drop(keep_alive);
        for i in REQUESTS / 2..REQUESTS {
            let mut stream = TcpStream::connect(&server).unwrap();
            stream.set_nodelay(true).unwrap();
            calls.push(call(&mut stream, &server, i));
        }
        calls
    })
}

fn attr<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &span["attributes"][key]
}

fn duration_of(span: &serde_json::Value) -> Duration {
    Duration::from_nanos(attr(span, "huatuo.duration_ns").as_u64().unwrap_or(0))
}

fn within_10_percent(what: &str, got: Duration, want: Duration) {
    let diff = got.abs_diff(want);
    assert!(
        diff.as_secs_f64() <= want.as_secs_f64() * 0.10,
        "{what}: span {got:?} vs client-measured {want:?}"
    );
}

#[test]
fn http_calls_between_two_namespaces_become_paired_spans_in_phoenix() {
    let test = "http_calls_between_two_namespaces_become_paired_spans_in_phoenix";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available(test) {
        return;
    }
    let Some(phoenix_bin) = phoenix_binary(test) else {
        return;
    };
    let phoenix = Phoenix::start(&phoenix_bin);
    // A real collector in between when installed: agent → rotel → Phoenix. rotel's own
    // export to Phoenix is not traced (ignored_ports), or it would loop.
    let rotel = rotel_binary(test).map(|bin| Rotel::start(&bin, phoenix.port));
    let receiver = rotel.as_ref().map_or(phoenix.port, |r| r.port);
    let nodes = TwoNodes::create();
    let endpoint = format!("http://127.0.0.1:{receiver}/v1/traces");
    let via = if rotel.is_some() { "rotel" } else { "directly" };
    eprintln!(
        "agent exports to {endpoint} ({via}), Phoenix on {}",
        phoenix.port
    );
    let agent = Agent::start_with_keys(
        &["nettrace"],
        &[(
            "nettrace",
            &format!(
                "otlp_endpoint = \"{endpoint}\"\nflush_after_ms = 300\notlp_batch_delay_ms = 200\n\
                 ignored_ports = [{}]",
                phoenix.port
            ),
        )],
        DISCOVERY,
    );
    agent.wait_state("nettrace", "running", Duration::from_secs(20));
    let server = Server::start(&nodes);
    // The server runs in a container: its spans must name it.
    let container = TestContainer::create().expect("create test cgroup");
    for dir in &container.dirs {
        std::fs::write(dir.join("cgroup.procs"), server.pid().to_string())
            .expect("move the server into the container");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent
        .get("/containers/json")
        .is_ok_and(|(_, body)| body.contains(&container.id))
    {
        assert!(
            Instant::now() < deadline,
            "the agent never saw the test container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls = client_calls(&nodes);
    drop(server);
    assert_eq!(calls.len(), REQUESTS);

    let (netns_a, netns_b) = (nodes.a.inode(), nodes.b.inode());
    let ours = |s: &serde_json::Value| {
        let netns = attr(s, "huatuo.netns").as_u64();
        netns == Some(netns_a) || netns == Some(netns_b)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans: Vec<_> = phoenix.spans().into_iter().filter(ours).collect();
        if spans.len() >= 2 * REQUESTS || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let role_in = |netns: u64, role: &str| -> Vec<serde_json::Value> {
        spans
            .iter()
            .filter(|s| attr(s, "huatuo.netns").as_u64() == Some(netns))
            .filter(|s| attr(s, "huatuo.role") == role)
            .cloned()
            .collect()
    };
    let clients = role_in(netns_a, "client");
    let servers = role_in(netns_b, "server");
    assert_eq!(clients.len(), REQUESTS, "client spans in A: {clients:#?}");
    assert_eq!(servers.len(), REQUESTS, "server spans in B");
    assert_eq!(spans.len(), 2 * REQUESTS, "no other spans in A or B");

    // Association keys pair client and server spans one to one.
    let by_key = |spans: &[serde_json::Value]| -> BTreeMap<String, serde_json::Value> {
        let map: BTreeMap<_, _> = spans
            .iter()
            .map(|s| {
                let key = attr(s, "huatuo.association_key")
                    .as_str()
                    .unwrap()
                    .to_string();
                (key, s.clone())
            })
            .collect();
        assert_eq!(
            map.len(),
            spans.len(),
            "association keys are unique per side"
        );
        map
    };
    let client_keys = by_key(&clients);
    let server_keys = by_key(&servers);
    assert_eq!(
        client_keys.keys().collect::<Vec<_>>(),
        server_keys.keys().collect::<Vec<_>>(),
        "every client span has exactly one server span with its key"
    );

    let clients_by_path: HashMap<String, &serde_json::Value> = clients
        .iter()
        .map(|s| (attr(s, "url.path").as_str().unwrap_or("").to_string(), s))
        .collect();
    for call in &calls {
        let client = clients_by_path
            .get(&call.path)
            .unwrap_or_else(|| panic!("no client span for {}", call.path));
        let key = attr(client, "huatuo.association_key").as_str().unwrap();
        let server = &server_keys[key];
        for (side, span) in [("client", *client), ("server", server)] {
            let what = format!("{side} span of {} {}", call.method, call.path);
            assert_eq!(attr(span, "http.request.method"), call.method, "{what}");
            assert_eq!(attr(span, "url.path"), call.path.as_str(), "{what}");
            assert_eq!(
                attr(span, "http.response.status_code").as_u64(),
                Some(u64::from(call.status)),
                "{what}"
            );
            assert_eq!(
                attr(span, "client.port").as_u64(),
                Some(u64::from(call.client_port)),
                "{what}"
            );
            assert_eq!(attr(span, "server.address"), nodes.b_ip.as_str(), "{what}");
            assert_eq!(attr(span, "client.address"), nodes.a_ip.as_str(), "{what}");
            assert_eq!(attr(span, "host.name"), "test-host", "{what}");
            let container_id = attr(span, "container.id").as_str();
            match side {
                "server" => assert_eq!(container_id, Some(container.id.as_str()), "{what}"),
                _ => assert_eq!(container_id, None, "{what}: the client runs on the host"),
            }
            let status = span["status_code"].as_str().unwrap_or("");
            let error = (side == "client" && call.status >= 400) || call.status >= 500;
            assert_eq!(status == "ERROR", error, "{what}: status {status}");
        }
        // The client span is what the client measured; the server span is the server's part
        // of it (without the wait in its socket buffer before it read the request): at least
        // the handler's sleep, at most the client's span.
        within_10_percent(&call.path, duration_of(client), call.measured);
        let server_took = duration_of(server);
        assert!(
            server_took >= Duration::from_millis(call.sleep_ms)
                && server_took <= duration_of(client),
            "{}: server span {server_took:?}, client span {:?}",
            call.path,
            duration_of(client)
        );
        let trace = |s: &serde_json::Value| s["context"]["trace_id"].as_str().unwrap().to_string();
        assert_eq!(trace(client), trace(server), "{}: one trace", call.path);
        match &call.traceparent {
            Some((trace_id, parent)) => {
                assert_eq!(
                    &trace(client),
                    trace_id,
                    "{}: traceparent honoured",
                    call.path
                );
                assert_eq!(server["parent_id"], parent.as_str(), "{}", call.path);
                assert_eq!(client["parent_id"], parent.as_str(), "{}", call.path);
                assert_eq!(attr(server, "huatuo.trace_source"), "traceparent");
            }
            None => {
                assert_eq!(
                    client["parent_id"],
                    serde_json::Value::Null,
                    "{}",
                    call.path
                );
                assert_eq!(
                    server["parent_id"], client["context"]["span_id"],
                    "{}: the server span is the client span's child",
                    call.path
                );
                assert_eq!(attr(server, "huatuo.trace_source"), "tcp_seq");
            }
        }
    }

    // RED metrics of the same calls.
    let metrics = agent.metrics();
    let peer = format!("{}:{SERVER_PORT}", nodes.b_ip);
    let client_labels = [
        ("role", "client"),
        ("protocol", "http"),
        ("peer", peer.as_str()),
    ];
    let server_labels = [
        ("role", "server"),
        ("protocol", "http"),
        ("peer", nodes.a_ip.as_str()),
        // A container's series carry its name (here the id's first 12 characters).
        ("service", &container.id[..12]),
    ];
    let client_errors = calls.iter().filter(|c| c.status >= 400).count() as f64;
    let server_errors = calls.iter().filter(|c| c.status >= 500).count() as f64;
    let red = |name: &str, labels: &[(&str, &str)]| sample(&metrics, name, labels);
    assert_eq!(
        red("huatuo_bamai_nettrace_requests_total", &client_labels),
        Some(REQUESTS as f64),
        "{metrics}"
    );
    assert_eq!(
        red("huatuo_bamai_nettrace_requests_total", &server_labels),
        Some(REQUESTS as f64)
    );
    assert_eq!(
        red("huatuo_bamai_nettrace_errors_total", &client_labels),
        Some(client_errors)
    );
    assert_eq!(
        red("huatuo_bamai_nettrace_errors_total", &server_labels),
        Some(server_errors)
    );
    assert_eq!(
        red(
            "huatuo_bamai_nettrace_duration_seconds_count",
            &client_labels
        ),
        Some(REQUESTS as f64)
    );
    let measured_sum: f64 = calls.iter().map(|c| c.measured.as_secs_f64()).sum();
    let sum = red("huatuo_bamai_nettrace_duration_seconds_sum", &client_labels).unwrap();
    assert!(
        (sum - measured_sum).abs() <= measured_sum * 0.10,
        "duration sum {sum} vs measured {measured_sum}"
    );
    let dropped: f64 = ["queue_full", "export_failed"]
        .iter()
        .map(|r| {
            red(
                "huatuo_bamai_nettrace_otlp_spans_dropped_total",
                &[("reason", r)],
            )
            .unwrap_or(-1.0)
        })
        .sum();
    assert_eq!(dropped, 0.0, "no span lost on the way to Phoenix");
}

#[test]
fn spans_for_an_unreachable_collector_are_dropped_and_counted() {
    let test = "spans_for_an_unreachable_collector_are_dropped_and_counted";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available(test) {
        return;
    }
    // Nothing listens on this port: every export fails at once.
    let endpoint = format!("http://127.0.0.1:{}/v1/traces", free_port());
    let agent = Agent::start_with_keys(
        &["nettrace"],
        &[(
            "nettrace",
            &format!(
                "otlp_endpoint = \"{endpoint}\"\notlp_batch_delay_ms = 100\notlp_timeout_ms = 1000"
            ),
        )],
        "",
    );
    agent.wait_state("nettrace", "running", Duration::from_secs(20));
    let nodes = TwoNodes::create();
    let server = Server::start(&nodes);
    let address = format!("{}:{SERVER_PORT}", nodes.b_ip);
    let calls = 10;
    let target = address.clone();
    nodes.a.in_thread(move || {
        for i in 0..calls {
            let mut stream = TcpStream::connect(&target).unwrap();
            call(&mut stream, &target, i * 10);
        }
    });
    drop(server);
    let client = [("role", "client"), ("peer", address.as_str())];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = agent.metrics();
        let requests = sample(&metrics, "huatuo_bamai_nettrace_requests_total", &client);
        let failed = sample(
            &metrics,
            "huatuo_bamai_nettrace_otlp_spans_dropped_total",
            &[("reason", "export_failed")],
        )
        .unwrap_or(0.0);
        let exported = sample(
            &metrics,
            "huatuo_bamai_nettrace_otlp_spans_exported_total",
            &[],
        );
        if requests == Some(calls as f64) && failed >= 2.0 * calls as f64 {
            assert_eq!(exported, Some(0.0), "nothing can have been exported");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests {requests:?}, export_failed {failed}:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        agent.actor_state("nettrace"),
        "running",
        "an outage is no failure"
    );
}
