//! Root test of the tcp_retransmit probe against the real kernel: a TCP transfer over `lo` in a
//! fresh network namespace where iptables drops a share of the data segments. Every
//! retransmission the kernel counts (RetransSegs of that namespace; the SYN is among the dropped)
//! becomes a `tcp_retransmit`
//! document carrying that namespace, the connection's ports and a reason class, and is counted in
//! huatuo_bamai_tcp_retransmit_total. The probe runs in-process; the test reads its event bus.

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

/// `Tcp: … RetransSegs …` of the namespace's /proc/net/snmp.
fn retrans_segs(netns: &Netns) -> u64 {
    let out = netns.output("cat", &["/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let (names, values) = (rows[0], rows[1]);
    let at = names
        .split_whitespace()
        .position(|n| n == "RetransSegs")
        .expect("RetransSegs column");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
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
            ["RTO", "fast_retransmit", "reorder_prone_fast", "unknown"].contains(&reason),
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
