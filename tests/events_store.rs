//! The embedded event store end to end: documents written with the library before the agent
//! starts are served by `GET /v1/events` and `huatuo-bamai events`; a store survives a SIGKILL
//! of the agent and of a writer in the middle of its commits.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huatuo_bamai::events::document::rfc3339;
use huatuo_bamai::events::store::{EventStore, Retention};
use huatuo_bamai::events::{EventDocument, EventQuery};
use serde_json::{json, Value};

use common::{Agent, BIN};

const WEB: &str = "d0c5000000000000000000000000000000000000000000000000000000000a01";
const DB: &str = "beef000000000000000000000000000000000000000000000000000000000b02";

fn retention() -> Retention {
    Retention {
        max_age: Duration::from_secs(7 * 86_400),
        max_bytes: 512 << 20,
    }
}

/// A document created `ago` before now, numbered `seq` in its `tracer_data`.
fn document(
    ago: Duration,
    seq: u64,
    tracer: &str,
    container: Option<(&str, &str)>,
) -> EventDocument {
    let at = SystemTime::now() - ago;
    let data = json!({"seq": seq, "pid": 1000 + seq, "comm": "stress", "stack": "a\nb\nc"});
    let mut doc = EventDocument::new("test-host", "test", tracer, None, 0, data);
    let nanos = at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    doc.tracer_id = format!("{nanos:016x}{seq:016x}");
    doc.set_event_time(at);
    if seq.is_multiple_of(5) {
        // As an earlier version stored it: RFC 3339 `time`, no `tracer_time`.
        doc.time = rfc3339(at);
        doc.tracer_time.clear();
    }
    if let Some((id, hostname)) = container {
        doc.container_id = id.to_string();
        doc.container_hostname = hostname.to_string();
    }
    doc
}

/// 30 documents over the last 30 minutes (oom, hungtask, dropwatch; two containers and the
/// host), plus one 30 days old that the agent's retention must delete.
fn seed(path: &Path) -> Vec<EventDocument> {
    let store = EventStore::open(path, retention()).unwrap();
    let docs: Vec<EventDocument> = (0..30u64)
        .map(|i| {
            let tracer = ["oom", "hungtask", "dropwatch"][i as usize % 3];
            let container = [Some((WEB, "web-1")), Some((DB, "db-1")), None][i as usize % 3];
            document(Duration::from_secs(60 * (30 - i)), i, tracer, container)
        })
        .collect();
    let expired = document(Duration::from_secs(30 * 86_400), 999, "oom", None);
    store.insert([&expired]).unwrap();
    for chunk in docs.chunks(8) {
        store.insert(chunk.iter()).unwrap();
    }
    docs
}

fn store_config(path: &Path) -> String {
    format!("[events]\nstore_path = \"{}\"\n", path.display())
}

fn get_json(agent: &Agent, path: &str) -> (u16, Value) {
    let (status, body) = agent.get(path).unwrap();
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn seqs(data: &Value) -> Vec<u64> {
    data.as_array()
        .unwrap_or_else(|| panic!("not an array: {data}"))
        .iter()
        .map(|d| d["tracer_data"]["seq"].as_u64().unwrap())
        .collect()
}

/// Waits until the agent's start-up purge has deleted the 30-day-old document.
fn wait_for_purge(agent: &Agent) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, reply) = get_json(agent, "/v1/events?limit=10000");
        if !seqs(&reply["data"]).contains(&999) {
            return;
        }
        assert!(Instant::now() < deadline, "expired document still there");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn http_api_serves_the_store_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store/events.redb");
    let docs = seed(&path);
    let agent = Agent::start_with(&[], &store_config(&path));
    wait_for_purge(&agent);

    let (status, reply) = get_json(&agent, "/v1/events");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(seqs(&reply["data"]), (0..30).collect::<Vec<_>>());
    assert_eq!(reply["data"][0], serde_json::to_value(&docs[0]).unwrap());

    let (_, reply) = get_json(&agent, "/v1/events?tracer_name=oom&limit=3");
    assert_eq!(seqs(&reply["data"]), vec![21, 24, 27]);
    let (_, reply) = get_json(&agent, "/v1/events?container=d0c5");
    assert_eq!(seqs(&reply["data"]), (0..30).step_by(3).collect::<Vec<_>>());
    let (_, reply) = get_json(&agent, "/v1/events?container=db-1&tracer_name=hungtask");
    assert_eq!(seqs(&reply["data"]), (1..30).step_by(3).collect::<Vec<_>>());
    // Documents 10..=14 by their times; `until` as Unix seconds, `since` as RFC 3339 with a
    // `+` offset written %2B.
    let since = SystemTime::now() - Duration::from_secs(60 * 20 + 30);
    let until = SystemTime::now() - Duration::from_secs(60 * 15 + 30);
    let since = rfc3339(since).replace('Z', "+00:00").replace('+', "%2B");
    let until = until.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (status, reply) = get_json(&agent, &format!("/v1/events?since={since}&until={until}"));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(seqs(&reply["data"]), vec![10, 11, 12, 13, 14]);

    let (status, reply) = get_json(&agent, &format!("/v1/events/{}", docs[7].tracer_id));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["data"], serde_json::to_value(&docs[7]).unwrap());
    let (status, reply) = get_json(&agent, "/v1/events/0000000000000000ffffffffffffffff");
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    for (query, name) in [
        ("limit=lots", "`limit`"),
        ("since=yesterday", "`since`"),
        ("until=2026-02-30T00:00:00Z", "`until`"),
        ("type=oom", "`type`"),
    ] {
        let (status, reply) = get_json(&agent, &format!("/v1/events?{query}"));
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{query}: {reply}");
        assert!(message.contains(name), "{query}: {message}");
    }

    let metrics = agent.metrics();
    assert_eq!(
        common::sample(&metrics, "huatuo_bamai_event_store_documents", &[]),
        Some(30.0),
        "{metrics}"
    );
    assert_eq!(agent.actor_state("event_store"), "running");
}

#[test]
fn cli_lists_and_shows_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let docs = seed(&path);
    let agent = Agent::start_with(&[], &store_config(&path));
    wait_for_purge(&agent);
    let server = format!("127.0.0.1:{}", agent.port);
    let events = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["events", "--server", &server])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), stdout, stderr)
    };

    let (ok, stdout, stderr) = events(&["list", "--json"]);
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(seqs(&listed), (0..30).collect::<Vec<_>>());

    let (ok, stdout, stderr) = events(&["list", "--since", "10m", "--type", "oom", "--json"]);
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(seqs(&listed), vec![21, 24, 27]);

    // The default server comes from http.listen of the configuration.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&agent.config_path)
        .args(["events", "list", "--container", "web-1", "--limit", "2"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("SUMMARY"),
        "{table}"
    );
    for (line, doc) in lines[1..].iter().zip([&docs[24], &docs[27]]) {
        assert!(line.contains(&doc.tracer_id), "{table}");
    }
    assert!(
        lines[1].contains("  oom  ") && lines[1].contains("web-1"),
        "{table}"
    );
    assert!(lines[1].contains("comm=stress pid=1024 seq=24"), "{table}");

    let (ok, stdout, stderr) = events(&["show", &docs[5].tracer_id]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("tracer_name:") && stdout.contains("dropwatch"),
        "{stdout}"
    );
    assert!(stdout.contains("  stack:\n    a\n    b\n    c"), "{stdout}");
    assert!(
        !stdout.contains("cgroup_id"),
        "0 (unknown) is left out: {stdout}"
    );
    let (ok, stdout, stderr) = events(&["show", &docs[5].tracer_id, "--json"]);
    assert!(ok, "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown, serde_json::to_value(&docs[5]).unwrap());

    let (ok, _, stderr) = events(&["show", "0000000000000000ffffffffffffffff"]);
    assert!(
        !ok && stderr.contains("no event with tracer_id"),
        "{stderr}"
    );
    let (ok, _, stderr) = events(&["list", "--since", "soon"]);
    assert!(!ok && stderr.contains("--since"), "{stderr}");
    let (ok, _, stderr) = events(&["list", "--limit", "0"]);
    assert!(
        !ok && stderr.contains("`limit`") && stderr.contains("HTTP 400"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["events", "--server", "127.0.0.1:1", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot connect"),
        "{stderr}"
    );
}

#[test]
fn agent_killed_with_sigkill_reopens_its_store_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    seed(&path);
    let mut agent = Agent::start_with(&[], &store_config(&path));
    wait_for_purge(&agent);
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let agent = Agent::start_with(&[], &store_config(&path));
    let (status, reply) = get_json(&agent, "/v1/events?limit=10000");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(seqs(&reply["data"]), (0..30).collect::<Vec<_>>());
}

#[test]
fn a_second_agent_on_the_same_store_keeps_serving_metrics_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let _agent = Agent::start_with(&[], &store_config(&path));
    let port = common::free_port();
    let socket = dir.path().join("second.sock");
    let config = dir.path().join("second.toml");
    std::fs::write(
        &config,
        common::config_text(port, &socket, &["loadavg"], &store_config(&path)),
    )
    .unwrap();
    let mut second = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The event store is not essential: metrics flow, and the store's error is in the status.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let reason = loop {
        let status = Command::new(BIN)
            .args(["ctl", "--json", "--socket"])
            .arg(&socket)
            .arg("status")
            .output()
            .unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        let store = reply["result"]["actors"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "event_store").cloned())
            .unwrap_or_default();
        if let Some(error) = store["last_error"].as_str() {
            break error.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event_store error reported: {reply}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(reason.contains("in use by another process"), "{reason}");
    assert!(reason.contains("events.store_path"), "{reason}");
    let (status, body) = common::http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("huatuo_bamai_loadavg_load1"), "{body}");
    let _ = second.kill();
    let _ = second.wait();
}

/// Set in the writer child: where it writes.
const CRASH_STORE_ENV: &str = "HUATUO_TEST_CRASH_STORE";

/// The child of `committed_documents_survive_sigkill_mid_write`: writes batches forever and
/// prints each committed tracer_id. Without the variable (a normal test run) it does nothing.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(CRASH_STORE_ENV) else {
        return;
    };
    let store = EventStore::open(Path::new(&path), retention()).unwrap();
    let stack: String = (0..40).map(|i| format!("frame_{i}+0x1f/0x80\n")).collect();
    let stdout = std::io::stdout();
    let started = Instant::now();
    let mut seq = 0u64;
    // A bound in case the parent dies without killing us.
    while started.elapsed() < Duration::from_secs(60) {
        let batch: Vec<EventDocument> = (0..1 + seq % 7)
            .map(|_| {
                seq += 1;
                let data = json!({"seq": seq, "stack": stack});
                EventDocument::new("h", "r", "hungtask", None, 0, data)
            })
            .collect();
        store.insert(batch.iter()).unwrap();
        let mut out = stdout.lock();
        for doc in &batch {
            writeln!(out, "committed {}", doc.tracer_id).unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn committed_documents_survive_sigkill_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_STORE_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut committed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed.len() < 500 && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(id) = line.strip_prefix("committed ") {
            committed.push(id.to_string());
        }
    }
    // SIGKILL while the writer is busy committing further batches.
    child.kill().unwrap();
    child.wait().unwrap();
    // Ids it printed after our last read were committed too; read them as well.
    committed.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("committed ").map(str::to_string)),
    );
    assert!(
        committed.len() >= 500,
        "writer reported only {}",
        committed.len()
    );

    let store = EventStore::open(&path, retention()).unwrap();
    let missing: Vec<&String> = committed
        .iter()
        .filter(|id| store.get(id).unwrap().is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} committed documents lost: {missing:?}",
        missing.len()
    );
    let stored = store
        .query(&EventQuery {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    assert!(stored.len() >= committed.len().min(10_000));
}

#[test]
fn events_tail_follows_new_documents_live() {
    if !common::bpf_available("events_tail_follows_new_documents_live") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start_with(
        &["dropwatch"],
        &store_config(&dir.path().join("events.redb")),
    );
    let mut tail = Command::new(BIN)
        .args([
            "events",
            "tail",
            "--json",
            "--type",
            "^dropwatch$",
            "--server",
        ])
        .arg(format!("127.0.0.1:{}", agent.port))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A datagram to a closed port is a NO_SOCKET drop: a dropwatch document, streamed live.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let line = (0..20)
        .find_map(|_| {
            socket.send_to(b"watch", ("127.0.0.1", port)).unwrap();
            rx.recv_timeout(std::time::Duration::from_millis(500)).ok()
        })
        .unwrap_or_else(|| panic!("no event streamed:\n{}", agent.log()));
    let _ = tail.kill();
    let _ = tail.wait();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "tech.huatuo.kernel.event", "{event}");
    assert_eq!(event["data"]["tracer_name"], "dropwatch", "{event}");
    assert!(
        event["data"].get("tracer_data").is_none(),
        "upstream's stream omits tracer_data"
    );

    // Malformed filters are refused with a message naming them.
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    let body = r#"{"filters":{"tracer_name":"("}}"#;
    write!(
        conn,
        "POST /v1/events/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("filters.tracer_name"), "{reply}");
}
