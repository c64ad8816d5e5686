//! Root test of the tcp_retransmit probe against the real kernel: a TCP transfer over `lo` in a
//! fresh network namespace where iptables drops a share of the data segments. Every
//! retransmission the kernel counts (RetransSegs of that namespace; the SYN is among the dropped)
//! becomes a `tcp_retransmit`
//! document carrying that namespace, the connection's ports and a reason class, and is counted in
//! huatuo_bamai_tcp_retransmit_total, with `drop_location = host_software` (the probe saw the
//! drops in skb:kfree_skb). A request/response exchange over a lossy path gives tail loss
//! probes: each is a `TLP` document, as many as the namespace's TCPLossProbes. The probe runs
//! in-process; the test reads its event bus.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use huatuo_bamai::core::Probe;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::tcp_retransmit::{TcpRetransmitConfig, TcpRetransmitProbe};

use common::netns::Netns;
use common::{bpf_available, collect_until, host_probe_context};

const PORT: u16 = 18090;
const BYTES: usize = 4 << 20;
/// MSS on `lo` at MTU 1500 with TCP timestamps: 1500 - 20 (IP) - 20 (TCP) - 12 (timestamps).
const MSS: u64 = 1448;

/// Segments one retransmitted skb carries (GSO keeps several in one skb on `lo`), as the
/// kernel counts them in RetransSegs.
fn segments(document: &huatuo_bamai::events::EventDocument) -> u64 {
    let data = &document.tracer_data;
    let seq = data["tcp_seq"].as_u64().unwrap_or(0) as u32;
    let end = data["tcp_end_seq"].as_u64().unwrap_or(0) as u32;
    u64::from(end.wrapping_sub(seq)).div_ceil(MSS).max(1)
}

/// Column `field` of the `<proto>:` rows of the namespace's `file` (/proc/net/snmp, netstat).
fn counter(netns: &Netns, file: &str, proto: &str, field: &str) -> u64 {
    let out = netns.output("cat", &[file]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{proto}:")))
        .collect();
    let (names, values) = (rows[0], rows[1]);
    let at = names
        .split_whitespace()
        .position(|n| n == field)
        .unwrap_or_else(|| panic!("{field} column"));
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

/// `Tcp: … RetransSegs …` of the namespace's /proc/net/snmp.
fn retrans_segs(netns: &Netns) -> u64 {
    counter(netns, "/proc/net/snmp", "Tcp", "RetransSegs")
}

/// Sends BYTES from a client to a server on 127.0.0.1:PORT inside the namespace; returns the
/// client's local port.
fn transfer(netns: &Netns) -> u16 {
    netns.in_thread(|| {
        let listener = TcpListener::bind(("127.0.0.1", PORT)).expect("listen");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut sink = Vec::with_capacity(BYTES);
            conn.read_to_end(&mut sink).expect("read");
            sink.len()
        });
        let mut client = TcpStream::connect(("127.0.0.1", PORT)).expect("connect");
        let local = client.local_addr().unwrap().port();
        client.write_all(&vec![7u8; BYTES]).expect("write");
        drop(client);
        assert_eq!(server.join().expect("server"), BYTES);
        local
    })
}

fn sample(set: &MetricSet, name: &str, kind: &str) -> f64 {
    set.families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.labels.iter().any(|(k, v)| *k == "kind" && v == kind))
        .map(|s| s.value)
        .sum()
}

#[test]
fn dropped_segments_in_a_netns_are_retransmit_documents_matching_retrans_segs() {
    if !bpf_available("dropped_segments_in_a_netns_are_retransmit_documents_matching_retrans_segs")
    {
        return;
    }
    let netns = Netns::create("rt");
    // Smaller skbs (lo's 64 KiB MTU would make a handful of huge ones); every 8th packet
    // towards the server dropped (a random share can be none of the few hundred).
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
            "0",
            "-j",
            "DROP",
        ],
    );
    let inode = netns.inode();
    let ctx = host_probe_context();
    let settings = TcpRetransmitConfig {
        enabled: true,
        max_events_per_second: 0,
        ..Default::default()
    };
    let mut probe = TcpRetransmitProbe::start(&settings, &ctx).expect("attach tcp_retransmit");
    let before = retrans_segs(&netns);
    let client_port = transfer(&netns);
    let expected = retrans_segs(&netns) - before;
    assert!(
        expected >= 10,
        "the drops caused only {expected} retransmits"
    );

    let ours = |d: &huatuo_bamai::events::EventDocument| {
        d.tracer_name == "tcp_retransmit"
            && d.tracer_data["net_namespace_inum"].as_u64() == Some(inode)
            && d.tracer_data["retransmit_error"] == 0
    };
    let (documents, set) = collect_until(&mut probe, &ctx, Duration::from_secs(10), |docs| {
        docs.iter().filter(|d| ours(d)).map(segments).sum::<u64>() >= expected
    });
    let documents: Vec<_> = documents.into_iter().filter(|d| ours(d)).collect();
    let seen = documents.len() as u64;
    // The tracepoint fires per skb, RetransSegs counts segments.
    let segments: u64 = documents.iter().map(segments).sum();
    assert!(
        segments * 10 >= expected * 9 && segments * 10 <= expected * 11,
        "{seen} documents carrying {segments} segments for {expected} RetransSegs"
    );
    for document in &documents {
        let data = &document.tracer_data;
        common::upstream::assert_upstream_shape(document);
        assert_eq!(data["tcp_saddr"], "127.0.0.1", "{data:#}");
        assert_eq!(data["tcp_daddr"], "127.0.0.1", "{data:#}");
        assert_eq!(data["tcp_sport"], client_port, "{data:#}");
        assert_eq!(data["tcp_dport"], PORT, "{data:#}");
        assert_eq!(data["event_type"], "tcp_retransmit_skb");
        assert!(data["ca_state"].is_u64(), "a number, as upstream: {data:#}");
        let reason = data["tcp_reason"].as_str().unwrap();
        assert!(
            [
                "RTO",
                "fast_retransmit",
                "reorder_prone_fast",
                "TLP",
                "unknown"
            ]
            .contains(&reason),
            "{data:#}"
        );
        // iptables dropped a segment of this connection in this host's stack just before.
        assert_eq!(data["drop_location"], "host_software", "{data:#}");
        assert!(
            data["net_namespace_cookie"].as_u64().is_some_and(|c| c > 0),
            "{data:#}"
        );
        // Packet 0, the SYN, is dropped too: its retransmission is the connect phase's.
        let expected_phase = match data["tcp_flags"].as_str() {
            Some("SYN") => ["connect"].as_slice(),
            _ => ["data", "close"].as_slice(),
        };
        assert!(
            expected_phase.contains(&data["phase"].as_str().unwrap()),
            "{data:#}"
        );
        let seq = data["tcp_seq"].as_u64().unwrap();
        let end = data["tcp_end_seq"].as_u64().unwrap();
        assert!(
            end > seq || seq > end + (1 << 31),
            "a data segment: {data:#}"
        );
        assert!(document.event_time().is_ok(), "{document:#?}");
    }
    // Loss recovery (fast retransmit) or the retransmission timer took most of them.
    let classified = documents
        .iter()
        .filter(|d| d.tracer_data["tcp_reason"] != "unknown")
        .count();
    assert!(classified * 2 > documents.len(), "{documents:#?}");
    let counted = sample(&set, "huatuo_bamai_tcp_retransmit_total", "skb");
    assert!(
        counted >= seen as f64,
        "counter {counted} below {seen} documents"
    );
}

/// `rounds` requests of 100 bytes from a client to an echo server on 127.0.0.1:port, each
/// waiting for its answer: a lost request is the only segment in flight, the tail a loss
/// probe resends.
fn request_response(netns: &Netns, port: u16, rounds: usize) {
    netns.in_thread(move || {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("listen");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 100];
            while conn.read_exact(&mut buf).is_ok() {
                conn.write_all(&buf).expect("answer");
            }
        });
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        client.set_nodelay(true).unwrap();
        let mut buf = [0u8; 100];
        for round in 0..rounds {
            buf[0] = round as u8;
            client.write_all(&buf).expect("request");
            client.read_exact(&mut buf).expect("answer");
        }
        drop(client);
        server.join().expect("server");
    })
}

#[test]
fn tail_losses_are_tlp_documents_matching_tcp_loss_probes() {
    if !bpf_available("tail_losses_are_tlp_documents_matching_tcp_loss_probes") {
        return;
    }
    let netns = Netns::create("tlp");
    let port = PORT + 1;
    // Every 7th packet towards the server: requests (and some ACKs) lost, the SYN kept.
    netns.run(
        "iptables",
        &[
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-m",
            "statistic",
            "--mode",
            "nth",
            "--every",
            "7",
            "--packet",
            "3",
            "-j",
            "DROP",
        ],
    );
    let inode = netns.inode();
    let ctx = host_probe_context();
    let settings = TcpRetransmitConfig {
        enabled: true,
        max_events_per_second: 0,
        ..Default::default()
    };
    let mut probe = TcpRetransmitProbe::start(&settings, &ctx).expect("attach tcp_retransmit");
    let probes_before = counter(&netns, "/proc/net/netstat", "TcpExt", "TCPLossProbes");
    request_response(&netns, port, 150);
    let loss_probes =
        counter(&netns, "/proc/net/netstat", "TcpExt", "TCPLossProbes") - probes_before;
    assert!(loss_probes >= 5, "only {loss_probes} loss probes");
    let tlp = |d: &huatuo_bamai::events::EventDocument| {
        d.tracer_name == "tcp_retransmit"
            && d.tracer_data["net_namespace_inum"].as_u64() == Some(inode)
            && d.tracer_data["tcp_reason"] == "TLP"
    };
    let (documents, _) = collect_until(&mut probe, &ctx, Duration::from_secs(10), |docs| {
        docs.iter().filter(|d| tlp(d)).count() as u64 >= loss_probes
    });
    let tlps: Vec<_> = documents.iter().filter(|d| tlp(d)).collect();
    // Every probe here resends the last request (no new data is waiting), so each one is a
    // retransmission the tracepoint sees.
    let seen = tlps.len() as u64;
    assert!(
        seen * 10 >= loss_probes * 9 && seen * 10 <= loss_probes * 11,
        "{seen} TLP documents for {loss_probes} TCPLossProbes"
    );
    for document in tlps {
        let data = &document.tracer_data;
        assert_eq!(data["icsk_pending"], 5, "{data:#}");
        assert!(
            data["ca_state"].as_u64() <= Some(1),
            "open or disorder: {data:#}"
        );
        assert_eq!(data["phase"], "data", "{data:#}");
        // The server probes too: its answer stays unacknowledged when the next request is lost.
        assert!(
            data["tcp_dport"] == port || data["tcp_sport"] == port,
            "{data:#}"
        );
        assert_eq!(data["drop_location"], "host_software", "{data:#}");
    }
}
