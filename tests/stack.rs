//! `make stack` (scripts/stack.sh) end to end, as root: the script brings up the agent (shipped
//! config), Debian's Prometheus with deploy/prometheus/rules.yml, osmem-server and Arize Phoenix;
//! Prometheus must see `huatuo_bamai_up == 1` and evaluate every alert rule, an OOM kill provoked
//! on the host must be found through the store's search API, scrapes of the agent must show up
//! as nettrace spans in Phoenix, and Ctrl-C must stop them all.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bpf_available, free_port, http_get, TestContainer, BIN};
use serde_json::Value;

struct Stack {
    child: Child,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Stack {
    fn start(agent_port: u16, prom_port: u16, store_port: u16, trace_port: u16) -> Stack {
        let dir = tempfile::tempdir().expect("stack dir");
        let mut child = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stack.sh"))
            .env("AGENT_BIN", BIN)
            .env("STACK_DIR", dir.path())
            .env("AGENT_PORT", agent_port.to_string())
            .env("PROM_PORT", prom_port.to_string())
            .env("STORE_PORT", store_port.to_string())
            .env("TRACE_PORT", trace_port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scripts/stack.sh");
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Stack { child, lines, dir }
    }

    /// Lines printed until one contains `marker` (panics with them all after `timeout`).
    fn wait_line(&self, marker: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(marker);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        let agent_log =
            std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default();
        panic!(
            "no `{marker}` from scripts/stack.sh within {timeout:?}: {seen:#?}\nagent.log tail: {}",
            &agent_log[agent_log.len().saturating_sub(3000)..]
        );
    }

    fn interrupt(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the stack") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the stack did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Retries `probe` until it returns Some or `timeout` passes.
fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A free port whose successor is free too (Phoenix's HTTP and gRPC ports).
fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Phoenix is installed by scripts/install-deps.sh test; CI requires it.
fn phoenix_installed() -> bool {
    if std::path::Path::new("/opt/phoenix/bin/phoenix").exists() {
        return true;
    }
    assert!(
        std::env::var_os("HUATUO_REQUIRE_BPF").is_none(),
        "/opt/phoenix/bin/phoenix missing (scripts/install-deps.sh test)"
    );
    eprintln!("stack test: no Phoenix, the trace store is not checked");
    false
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn make_stack_scrapes_evaluates_rules_ships_events_and_stops_on_ctrl_c() {
    if !bpf_available("make_stack_scrapes_evaluates_rules_ships_events_and_stops_on_ctrl_c") {
        return;
    }
    let (agent_port, prom_port, store_port) = (free_port(), free_port(), free_port());
    // Phoenix takes the port after its HTTP one for gRPC.
    let trace_port = free_port_pair();
    let traces = phoenix_installed();
    let mut stack = Stack::start(agent_port, prom_port, store_port, trace_port);
    let printed = stack.wait_line("stack: up", Duration::from_secs(240));
    let urls = stack.wait_line("control ", Duration::from_secs(5));
    let urls = urls.join("\n");
    for url in [
        format!("http://127.0.0.1:{agent_port}/metrics"),
        format!("http://127.0.0.1:{prom_port}/graph"),
        format!("http://127.0.0.1:{store_port}/huatuo_bamai/_search"),
    ] {
        assert!(urls.contains(&url), "{url} not printed: {printed:?} {urls}");
    }

    if traces {
        let url = format!("http://127.0.0.1:{trace_port}/");
        assert!(urls.contains(&url), "{url} not printed: {urls}");
    }

    // Prometheus scrapes the agent: huatuo_bamai_up == 1 through its HTTP API.
    let up = poll(Duration::from_secs(40), || {
        let reply = get_json(prom_port, "/api/v1/query?query=huatuo_bamai_up");
        let value = reply["data"]["result"][0]["value"][1].as_str()?.to_string();
        Some(value)
    });
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "huatuo_bamai_up through Prometheus"
    );

    // Every alert rule of deploy/prometheus/rules.yml is loaded and evaluates without error.
    let rules = poll(Duration::from_secs(30), || {
        let reply = get_json(prom_port, "/api/v1/rules");
        let rules: Vec<Value> = reply["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules.iter().all(|r| {
            r["health"] == "ok"
                && !r["lastEvaluation"]
                    .as_str()
                    .unwrap_or("0")
                    .starts_with("0001")
        });
        (!rules.is_empty() && evaluated).then_some(rules)
    });
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/rules.yml"
    ))
    .expect("rules.yml");
    let shipped_alerts = shipped.matches("- alert:").count();
    let rules = rules.unwrap_or_else(|| {
        panic!(
            "not every rule evaluated ok: {:#}",
            get_json(prom_port, "/api/v1/rules")
        )
    });
    assert_eq!(rules.len(), shipped_alerts, "rules loaded vs rules.yml");

    // An OOM kill on the host reaches the store and is found through its search API.
    let mut memcg = TestContainer::create().expect("a test cgroup");
    let limit = (32u64 << 20).to_string();
    let limited = memcg.dirs.iter().any(|dir| {
        std::fs::write(dir.join("memory.limit_in_bytes"), &limit).is_ok()
            || std::fs::write(dir.join("memory.max"), &limit).is_ok()
    });
    assert!(limited, "no memory controller in {:?}", memcg.dirs);
    for dir in &memcg.dirs {
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    }
    let pid = memcg.spawn(Command::new("sh").args([
        "-c",
        "sleep 0.3; exec python3 -c 'b = bytearray(256 << 20)'",
    ]));
    let found = poll(Duration::from_secs(60), || {
        let _ = common::http_request(store_port, "POST", "/huatuo_bamai/_refresh", "");
        let (status, body) = http_get(store_port, "/huatuo_bamai/_search?size=1000").ok()?;
        if status != 200 {
            return None;
        }
        let reply: Value = serde_json::from_str(&body).ok()?;
        reply["hits"]["hits"].as_array()?.iter().find_map(|hit| {
            let doc = &hit["_source"];
            (doc["tracer_name"] == "oom"
                && doc["tracer_data"]["victim"]["pid"].as_u64() == Some(u64::from(pid)))
            .then(|| doc.clone())
        })
    });
    let document = found.unwrap_or_else(|| panic!("no oom document for pid {pid} in the store"));
    assert_eq!(document["tracer_data"]["victim"]["comm"], "python3");
    assert!(
        document["tracer_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{document:#}"
    );
    drop(memcg);

    // Each scrape is an HTTP/1 call the nettrace probe sees: spans of GET /metrics reach
    // Phoenix through OTLP.
    if traces {
        // Traffic on fresh connections: scrapes of the agent by this test. A span in Phoenix
        // proves the path agent → OTLP → trace store; which calls are there, with which
        // attributes, is tests/nettrace.rs's subject (here the newest spans are sometimes all
        // generic TCP ones, see the note).
        for _ in 0..3 {
            let _ = http_get(agent_port, "/metrics");
        }
        let span = poll(Duration::from_secs(60), || {
            let (status, body) =
                http_get(trace_port, "/v1/projects/default/spans?limit=100").ok()?;
            if status != 200 {
                return None;
            }
            let page: Value = serde_json::from_str(&body).ok()?;
            page["data"].as_array()?.first().cloned()
        });
        assert!(
            span.is_some(),
            "no span of the nettrace probe in Phoenix: {:?}",
            http_get(trace_port, "/v1/projects/default/spans?limit=5")
        );
    }

    // The status page, as a browser shows it: live parts and the OOM among the recent events.
    if common::chromium::available("status page in chromium") {
        let page = format!("http://127.0.0.1:{agent_port}/");
        let profile = stack.dir.path().join("chromium-profile");
        let dom = String::from_utf8_lossy(&common::chromium::run(
            &profile,
            &page,
            &["--dump-dom".to_string()],
        ))
        .into_owned();
        let tracer_id = document["tracer_id"].as_str().unwrap_or_default();
        for wanted in ["dropwatch", "overhead", tracer_id] {
            assert!(
                dom.contains(wanted),
                "status page lacks {wanted}: {dom:.2000}"
            );
        }
        let shot = stack.dir.path().join("status.png");
        common::chromium::run(
            &profile,
            &page,
            &[format!("--screenshot={}", shot.display())],
        );
        let png = std::fs::read(&shot).expect("status page screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "{} bytes",
            png.len()
        );
        // `HUATUO_STATUS_SCREENSHOT=docs/images/status-page.png` refreshes the docs' picture.
        if let Some(target) = std::env::var_os("HUATUO_STATUS_SCREENSHOT") {
            std::fs::write(target, &png).expect("write the screenshot");
        }
    }

    // Ctrl-C stops all three and the script exits 0.
    let status = stack.interrupt();
    assert!(status.success(), "stack exit status {status:?}");
    std::thread::sleep(Duration::from_millis(500));
    for (name, port) in [
        ("agent", agent_port),
        ("prometheus", prom_port),
        ("osmem-server", store_port),
        ("phoenix", trace_port),
    ] {
        assert!(
            !listening(port),
            "{name} still listens on {port} after Ctrl-C"
        );
    }
    let out = std::process::Command::new("pgrep")
        .args(["-f", &stack.dir.path().display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "processes of the stack left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
