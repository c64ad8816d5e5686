//! The embedded store under a real burst of events survives `kill -9` of the agent: the agent
//! runs with dropwatch on (in-kernel port filter, no rate limit) while UDP datagrams to a closed
//! port are dropped as fast as a sender can manage; the test records every `tracer_id` the agent
//! serves from `GET /v1/events` (so acknowledged as committed), SIGKILLs the agent in the middle
//! of the burst, restarts it on the same store file, and checks that the store opens, every
//! recorded document is still there whole, and new drops are stored again.

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{bpf_available, config_text, free_port, http_get, BIN};

/// The real agent on a config of the test's own: only dropwatch, filtered to one port.
struct CrashAgent {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl CrashAgent {
    fn start(store: &Path, drop_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let socket = dir.path().join("control.sock");
        // The adaptive sampler off: this is about the store, and the burst is over any budget.
        let events = format!(
            "[events]\nstore_path = \"{}\"\n[sampler]\nenabled = false\n",
            store.display()
        );
        let text = config_text(port, &socket, &["dropwatch"], &events);
        // The harness writes `[probes.dropwatch]` with `enabled` and `interval_ms`; a TOML table
        // cannot be opened twice, so the probe's own keys go right after its header.
        let header = "[probes.dropwatch]\n";
        assert!(text.contains(header), "{text}");
        let text = text.replacen(
            header,
            &format!(
                "{header}ports = [{drop_port}]\nprotocols = [\"udp\"]\nmax_events_per_second = 0\n"
            ),
            1,
        );
        let config = dir.path().join("huatuo-bamai.toml");
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("agent.log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn agent");
        let mut agent = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        agent.wait_ready();
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/readyz` answers 204 once every service, the event store included, runs.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("agent exited early ({status}):\n{}", self.log());
            }
            if let Ok((204, _)) = http_get(self.port, "/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready in 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) =
            http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
        (status, value)
    }

    /// Every dropwatch document for `drop_port` created since `since` (Unix seconds); fails when
    /// the answer is full (older documents would be left out).
    fn documents(&self, since: f64, drop_port: u16) -> Vec<Value> {
        let path = format!("/v1/events?tracer_name=dropwatch&since={since:.6}&limit=10000");
        let (status, reply) = self.get_json(&path);
        assert_eq!(status, 200, "{reply}");
        let all = reply["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data: {reply}"));
        assert!(all.len() < 10_000, "more documents than one answer holds");
        all.iter()
            .filter(|d| {
                d["tracer_data"]["layers"]["udp"]["dport"].as_u64() == Some(u64::from(drop_port))
            })
            .cloned()
            .collect()
    }

    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the agent");
        self.child.wait().expect("reap the agent");
    }
}

impl Drop for CrashAgent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends UDP datagrams to 127.0.0.1:`port` until stopped, about two a millisecond; counts them.
struct Burst {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Burst {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
            while !stop_flag.load(Ordering::Relaxed) {
                for _ in 0..2 {
                    // A refused send (ICMP port unreachable) is still a dropped datagram.
                    let _ = socket.send_to(b"burst", ("127.0.0.1", port));
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Self {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ids(documents: &[Value]) -> BTreeSet<String> {
    documents
        .iter()
        .filter_map(|d| d["tracer_id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn documents_the_agent_served_survive_sigkill_in_the_middle_of_a_burst() {
    if !bpf_available("documents_the_agent_served_survive_sigkill_in_the_middle_of_a_burst") {
        return;
    }
    let started = Instant::now();
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("events.redb");
    // A port nobody listens on (bound, then released).
    let drop_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;

    let mut agent = CrashAgent::start(&store, drop_port);
    let burst = Burst::start(drop_port);
    // Record what the agent serves: committed documents, by the store's contract.
    let mut served: BTreeSet<String> = BTreeSet::new();
    let mut documents: Vec<Value> = Vec::new();
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while served.len() < 1000 || polls < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} documents served for {} datagrams sent:\n{}",
            served.len(),
            burst.sent(),
            agent.log()
        );
        let now = agent.documents(since, drop_port);
        served.extend(ids(&now));
        documents = now;
        polls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // Kill it while drops keep coming and the store keeps committing.
    let sent_at_kill = burst.sent();
    agent.sigkill();
    let more_after_kill = Instant::now() + Duration::from_millis(300);
    while Instant::now() < more_after_kill {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(burst);
    eprintln!(
        "served {} documents, {sent_at_kill} datagrams sent before the kill",
        served.len()
    );

    // The same store file, a new agent: it opens (readyz), and every served document is there.
    let restarted = CrashAgent::start(&store, drop_port);
    let after = restarted.documents(since, drop_port);
    let stored = ids(&after);
    let missing: Vec<&String> = served.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} served documents lost by the kill: {:?}",
        missing.len(),
        served.len(),
        &missing[..missing.len().min(10)]
    );
    // Whole documents, not just keys: the last list served before the kill, field for field.
    let by_id: std::collections::HashMap<&str, &Value> = after
        .iter()
        .filter_map(|d| Some((d["tracer_id"].as_str()?, d)))
        .collect();
    for document in &documents {
        let id = document["tracer_id"].as_str().unwrap();
        assert_eq!(by_id.get(id), Some(&document), "{id} changed");
    }
    // One by id, through the other endpoint.
    let first = served.iter().next().unwrap();
    let (status, one) = restarted.get_json(&format!("/v1/events/{first}"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["tracer_id"], first.as_str(), "{one}");
    assert_eq!(
        one["data"]["tracer_data"]["drop_reason"], "NO_SOCKET",
        "{one}"
    );

    // The restarted agent keeps storing: a few new drops are served too.
    let before = stored.len();
    let burst = Burst::start(drop_port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ids(&restarted.documents(since, drop_port));
        if now.len() > before && now.is_superset(&stored) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new documents after the restart:\n{}",
            restarted.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(burst);
    eprintln!("done in {:?}", started.elapsed());
}
