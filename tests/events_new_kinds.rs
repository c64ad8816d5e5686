//! `huatuo-bamai events list --type X` and the SSE filter of `events tail --type` (POST
//! /v1/events/watch) return only kind X, for two of the new kinds provoked in one agent run:
//! `tcp_retransmit` (a TCP transfer in a netns whose iptables drops every 8th packet) and
//! `netdev_events` (a veth in the host namespace set down and up).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::netns::Netns;
use common::{Agent, BIN};

const PORT: u16 = 18094;

fn lossy_transfer(netns: &Netns) {
    netns.in_thread(|| {
        let listener = TcpListener::bind(("127.0.0.1", PORT)).expect("listen");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut sink = Vec::new();
            conn.read_to_end(&mut sink).expect("read");
        });
        let mut client = TcpStream::connect(("127.0.0.1", PORT)).expect("connect");
        client.write_all(&vec![1u8; 1 << 20]).expect("write");
        drop(client);
        server.join().expect("server");
    })
}

fn list(agent: &Agent, kind: &str) -> Vec<Value> {
    let out = Command::new(BIN)
        .args(["events", "--server", &format!("127.0.0.1:{}", agent.port)])
        .args(["list", "--type", kind, "--limit", "10000", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("not a list: {other}"),
    }
}

#[test]
fn list_and_tail_filter_the_new_kinds() {
    if !common::bpf_available("list_and_tail_filter_the_new_kinds") {
        return;
    }
    let veth = format!("evk{}", std::process::id() % 100_000);
    let agent = Agent::start_with_keys(
        &["tcp_retransmit", "netdev_events"],
        &[
            ("tcp_retransmit", "max_events_per_second = 0"),
            ("netdev_events", &format!("devices = [\"{veth}\"]")),
        ],
        "",
    );
    let mut tail = Command::new(BIN)
        .args([
            "events",
            "tail",
            "--json",
            "--type",
            "^tcp_retransmit$",
            "--server",
        ])
        .arg(format!("127.0.0.1:{}", agent.port))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
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
    std::thread::sleep(Duration::from_millis(500));

    // netdev_events: a watched veth set up and down.
    common::run(
        "ip",
        &[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{veth}p"),
        ],
    );
    std::thread::sleep(Duration::from_millis(400));
    common::run("ip", &["link", "set", &veth, "up"]);
    std::thread::sleep(Duration::from_millis(400));
    common::run("ip", &["link", "set", &veth, "down"]);
    // tcp_retransmit: drops in a netns.
    let netns = Netns::create("evk");
    netns.run("ip", &["link", "set", "lo", "mtu", "1500"]);
    let port = PORT.to_string();
    netns.run(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-m",
            "statistic",
            "--mode",
            "nth",
            "--every",
            "8",
            "--packet",
            "1",
            "-j",
            "DROP",
        ],
    );
    lossy_transfer(&netns);

    let deadline = Instant::now() + Duration::from_secs(15);
    let (retransmits, links) = loop {
        let (r, l) = (
            list(&agent, "tcp_retransmit"),
            list(&agent, "netdev_events"),
        );
        if (!r.is_empty() && l.len() >= 2) || Instant::now() > deadline {
            break (r, l);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = Command::new("ip").args(["link", "del", &veth]).status();
    assert!(
        !retransmits.is_empty(),
        "no tcp_retransmit stored:\n{}",
        agent.log()
    );
    assert!(
        retransmits
            .iter()
            .all(|d| d["tracer_name"] == "tcp_retransmit"),
        "{retransmits:#?}"
    );
    assert!(
        retransmits
            .iter()
            .any(|d| d["tracer_data"]["tcp_dport"] == PORT),
        "{retransmits:#?}"
    );
    assert!(
        links.iter().all(|d| d["tracer_name"] == "netdev_events"),
        "{links:#?}"
    );
    let ours: Vec<&Value> = links
        .iter()
        .filter(|d| d["tracer_data"]["ifname"] == veth.as_str())
        .collect();
    assert_eq!(ours.len(), 2, "up and down: {links:#?}");
    assert_eq!(ours[0]["tracer_data"]["linkstatus"], "linkstatus_adminup");
    assert!(ours[1]["tracer_data"]["linkstatus"]
        .as_str()
        .unwrap()
        .starts_with("linkstatus_admindown"));

    // The live stream carried tcp_retransmit documents and nothing else (the two link
    // changes happened while it was open).
    let mut streamed = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(1500)) {
        streamed.push(line);
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(!streamed.is_empty(), "nothing streamed");
    for line in &streamed {
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["data"]["tracer_name"], "tcp_retransmit", "{event}");
    }
}
