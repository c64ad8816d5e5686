//! Root tests of the dropwatch probe against the real kernel: UDP datagrams to a closed port
//! on 127.0.0.1 are dropped with reason NO_SOCKET and become one document each (within the
//! rate limit), with the right addresses, port, protocol and the kernel stack of the drop;
//! datagrams an iptables DROP rule in a fresh network namespace drops are NETFILTER_DROP
//! documents carrying that namespace's inode; over the in-kernel rate limit, documents plus the
//! suppressed count add up to the datagrams sent; a reason filter that does not match lets
//! nothing through. The probe runs in-process and the test subscribes to its event bus.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use huatuo_bamai::core::Probe;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::dropwatch;

use common::bpf_available;
use common::netns::Netns;

/// Both tests count drops host-wide: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A UDP port on 127.0.0.1 nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().unwrap().port()
}

fn send_datagrams(port: u16, n: usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    for _ in 0..n {
        // ICMP port unreachable may fail a later send with ECONNREFUSED on some setups.
        let _ = socket.send_to(b"dropwatch", ("127.0.0.1", port));
    }
}

fn sample(set: &MetricSet, name: &str, label: Option<(&str, &str)>) -> f64 {
    set.families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.samples.iter())
        .filter(|s| label.is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| *lk == k && lv == v)))
        .map(|s| s.value)
        .sum()
}

/// Only drops to or from `port`, any protocol (the default is TCP only).
fn config(port: u16, max_events_per_second: u32) -> dropwatch::DropwatchConfig {
    dropwatch::DropwatchConfig {
        max_events_per_second,
        ports: vec![port],
        protocols: Vec::new(),
        ..Default::default()
    }
}

/// The decoded layer `layer` (`ipv4`, `udp`, ...) of a document's `tracer_data.layers`.
fn layer<'a>(data: &'a serde_json::Value, layer: &str) -> &'a serde_json::Value {
    &data["layers"][layer]
}

#[test]
fn udp_to_a_closed_port_is_one_no_socket_document_per_datagram() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("udp_to_a_closed_port_is_one_no_socket_document_per_datagram") {
        return;
    }
    const N: usize = 20;
    let ctx = common::host_probe_context();
    let port = closed_port();
    let mut probe =
        dropwatch::DropwatchProbe::start(&config(port, 100), &ctx).expect("start dropwatch");
    send_datagrams(port, N);
    let (mut documents, _) =
        common::collect_until(&mut probe, &ctx, Duration::from_secs(5), |d| d.len() >= N);
    // Anything more would show up within a few more ticks.
    let (more, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_millis(500), |_| false);
    documents.extend(more);
    assert_eq!(documents.len(), N, "{documents:#?}");
    for document in &documents {
        let data = &document.tracer_data;
        assert_eq!(document.tracer_name, "dropwatch");
        common::upstream::assert_upstream_shape(document);
        assert_eq!(data["drop_reason"], "NO_SOCKET", "{data:#}");
        assert_eq!(data["drop_source"], "software", "{data:#}");
        assert_eq!(data["source"], "events", "{data:#}");
        assert_eq!(layer(data, "ipv4")["daddr"], "127.0.0.1", "{data:#}");
        assert_eq!(layer(data, "ipv4")["saddr"], "127.0.0.1", "{data:#}");
        assert_eq!(layer(data, "ipv4")["protocol"], "UDP", "{data:#}");
        assert_eq!(layer(data, "ipv4")["ttl"], 64, "{data:#}");
        assert_eq!(
            layer(data, "udp")["dport"].as_u64(),
            Some(u64::from(port)),
            "{data:#}"
        );
        // Received on lo: the copy starts at its (all-zero) Ethernet header.
        assert_eq!(layer(data, "ether")["type"], "IPv4", "{data:#}");
        assert_eq!(data["layers"]["label"], "IPv4/UDP", "{data:#}");
        assert_eq!(data["packet_eth_proto"], "0x800", "{data:#}");
        // 8 bytes of UDP header + 9 of payload, the IP header already pulled.
        assert_eq!(data["packet_len_bytes"], 17, "{data:#}");
        assert_eq!(data["netdev_name"], "lo", "{data:#}");
        assert_eq!(data["netdev_ifindex"], 1, "{data:#}");
        assert_eq!(
            data["netdev_linkstatus"],
            serde_json::json!(["linkstatus_adminup", "linkstatus_carrierup"]),
            "{data:#}"
        );
        assert!(data["net_namespace_inum"].as_u64().unwrap() > 0, "{data:#}");
        assert!(
            data["net_namespace_cookie"].as_u64().unwrap() > 0,
            "{data:#}"
        );
        assert!(
            data["drop_location"]
                .as_str()
                .unwrap()
                .starts_with("0xffff"),
            "upstream's address form: {data:#}"
        );
        assert!(
            data["drop_location_symbol"].as_str().unwrap().contains('+'),
            "symbolised location: {data:#}"
        );
        assert!(
            data["packet_skb_addr"]
                .as_str()
                .unwrap()
                .starts_with("0xffff"),
            "{data:#}"
        );
        assert_eq!(data["pid"].as_u64(), Some(u64::from(std::process::id())));
        assert_plausible_stack(data, &["udp", "kfree_skb", "ip_"]);
    }
    let no_socket = sample(
        &set,
        "huatuo_bamai_dropwatch_total",
        Some(("reason", "NO_SOCKET")),
    );
    assert!(
        no_socket >= N as f64,
        "dropwatch_total{{NO_SOCKET}} = {no_socket}"
    );
}

/// The document's `stack`: symbolised frames, innermost first, starting below the tracing
/// machinery, with at least one frame naming one of `expected`.
fn assert_plausible_stack(data: &serde_json::Value, expected: &[&str]) {
    let stack = data["stack"].as_str().unwrap_or_default();
    let frames: Vec<&str> = stack.lines().collect();
    assert!(frames.len() >= 3, "a kernel stack: {data:#}");
    for frame in &frames {
        assert!(
            frame.contains("+0x") && !frame.starts_with("0x"),
            "symbolised frame `{frame}`: {data:#}"
        );
    }
    assert!(
        !frames[0].starts_with("bpf_prog_") && !frames[0].starts_with("bpf_trace_run"),
        "the probe's own frames are left out: {data:#}"
    );
    assert!(
        frames
            .iter()
            .any(|f| expected.iter().any(|name| f.contains(name))),
        "a frame naming one of {expected:?}: {data:#}"
    );
}

/// A network namespace with an iptables rule dropping UDP to one port.
struct DroppingNetns(Netns);

impl DroppingNetns {
    fn create(port: u16) -> Self {
        let netns = Netns::create("dw");
        let port = port.to_string();
        netns.run(
            "iptables",
            &["-A", "INPUT", "-p", "udp", "--dport", &port, "-j", "DROP"],
        );
        Self(netns)
    }

    fn inode(&self) -> u64 {
        self.0.inode()
    }

    /// Sends `n` datagrams to 127.0.0.1:`port` from inside the namespace.
    fn send_datagrams(&self, port: u16, n: usize) {
        self.0.in_thread(move || send_datagrams(port, n));
    }
}

#[test]
fn an_iptables_drop_in_a_netns_is_a_netfilter_drop_document_with_that_netns() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("an_iptables_drop_in_a_netns_is_a_netfilter_drop_document_with_that_netns") {
        return;
    }
    const N: usize = 15;
    let ctx = common::host_probe_context();
    // Any port: the namespace is new, nothing listens in it.
    let port = closed_port();
    let netns = DroppingNetns::create(port);
    let inode = netns.inode();
    let mut probe =
        dropwatch::DropwatchProbe::start(&config(port, 100), &ctx).expect("start dropwatch");
    netns.send_datagrams(port, N);
    let mine = |d: &huatuo_bamai::events::EventDocument| {
        d.tracer_data["net_namespace_inum"].as_u64() == Some(inode)
            && layer(&d.tracer_data, "udp")["dport"].as_u64() == Some(u64::from(port))
    };
    let (mut documents, _) =
        common::collect_until(&mut probe, &ctx, Duration::from_secs(5), |docs| {
            docs.iter().filter(|d| mine(d)).count() >= N
        });
    let (more, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_millis(500), |_| false);
    documents.extend(more);
    let documents: Vec<_> = documents.into_iter().filter(|d| mine(d)).collect();
    assert_eq!(documents.len(), N, "{documents:#?}");
    for document in &documents {
        let data = &document.tracer_data;
        common::upstream::assert_upstream_shape(document);
        assert_eq!(data["drop_reason"], "NETFILTER_DROP", "{data:#}");
        assert_eq!(layer(data, "ipv4")["saddr"], "127.0.0.1", "{data:#}");
        assert_eq!(layer(data, "ipv4")["daddr"], "127.0.0.1", "{data:#}");
        assert_eq!(data["layers"]["label"], "IPv4/UDP", "{data:#}");
        assert_eq!(data["netdev_name"], "lo", "{data:#}");
        assert!(layer(data, "udp")["sport"].as_u64() > Some(0), "{data:#}");
        assert_eq!(data["pid"].as_u64(), Some(u64::from(std::process::id())));
        // Dropped on the netfilter hook (freed by nf_tables or by nf_hook_slow itself,
        // depending on the iptables backend) below ip_local_deliver.
        assert_plausible_stack(data, &["nf_hook_slow"]);
        assert_plausible_stack(data, &["ip_local_deliver"]);
        // The location is the stack's frame that called the free.
        let location = data["drop_location_symbol"].as_str().unwrap_or_default();
        assert!(
            data["stack"]
                .as_str()
                .is_some_and(|s| s.lines().any(|f| f == location)),
            "{data:#}"
        );
    }
    // The same drops under the running kernel's reason name.
    let netfilter = sample(
        &set,
        "huatuo_bamai_dropwatch_total",
        Some(("reason", "NETFILTER_DROP")),
    );
    assert!(
        netfilter >= N as f64,
        "dropwatch_total{{NETFILTER_DROP}} = {netfilter}"
    );
    drop(netns);
    assert!(
        !PathBuf::from("/run/netns")
            .join(format!("huatuo-dw-{}", std::process::id()))
            .exists(),
        "the namespace is deleted"
    );
}

#[test]
fn drops_over_the_rate_limit_are_counted_as_suppressed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("drops_over_the_rate_limit_are_counted_as_suppressed") {
        return;
    }
    const N: usize = 50;
    const LIMIT: u32 = 5;
    let ctx = common::host_probe_context();
    let port = closed_port();
    let mut probe =
        dropwatch::DropwatchProbe::start(&config(port, LIMIT), &ctx).expect("start dropwatch");
    let started = Instant::now();
    send_datagrams(port, N);
    let burst = started.elapsed();
    // Let every record reach the ring buffer and be drained.
    let (documents, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_secs(2), |_| false);
    // The burst spans at most this many one-second windows of the kernel's counter.
    let windows = burst.as_secs() + 2;
    let mine = documents.len() as u64;
    assert!(mine >= 1, "at least one document in the first window");
    assert!(
        mine <= u64::from(LIMIT) * windows,
        "{mine} documents in {windows} windows over a {burst:?} burst"
    );
    let suppressed = sample(&set, "huatuo_bamai_dropwatch_suppressed_total", None) as u64;
    // The port filter runs in the kernel before the rate limit: unrelated drops use no tokens.
    assert_eq!(
        mine + suppressed,
        N as u64,
        "documents {mine} + suppressed {suppressed} vs {N} sent"
    );
    let no_socket = sample(
        &set,
        "huatuo_bamai_dropwatch_total",
        Some(("reason", "NO_SOCKET")),
    );
    assert!(
        no_socket >= N as f64,
        "dropwatch_total{{NO_SOCKET}} = {no_socket}"
    );
    for document in &documents {
        assert_eq!(document.tracer_data["drop_reason"], "NO_SOCKET");
        assert_eq!(
            layer(&document.tracer_data, "udp")["dport"].as_u64(),
            Some(u64::from(port))
        );
    }
}

#[test]
fn a_reason_filter_that_does_not_match_lets_nothing_through() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("a_reason_filter_that_does_not_match_lets_nothing_through") {
        return;
    }
    let ctx = common::host_probe_context();
    let port = closed_port();
    let settings = dropwatch::DropwatchConfig {
        reasons: vec!["NETFILTER_DROP".to_string()],
        protocols: vec!["udp".to_string()],
        ..config(port, 100)
    };
    let mut probe = dropwatch::DropwatchProbe::start(&settings, &ctx).expect("start dropwatch");
    send_datagrams(port, 10);
    let (documents, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_secs(1), |_| false);
    assert!(documents.is_empty(), "{documents:#?}");
    assert_eq!(
        sample(&set, "huatuo_bamai_dropwatch_suppressed_total", None),
        0.0
    );
    // Still counted by reason.
    let no_socket = sample(
        &set,
        "huatuo_bamai_dropwatch_total",
        Some(("reason", "NO_SOCKET")),
    );
    assert!(
        no_socket >= 10.0,
        "dropwatch_total{{NO_SOCKET}} = {no_socket}"
    );
}

#[test]
fn by_default_a_scrape_of_the_agent_is_no_document_but_a_dropped_syn_is() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("by_default_a_scrape_of_the_agent_is_no_document_but_a_dropped_syn_is") {
        return;
    }
    let agent = common::Agent::start(&[]);
    let ctx = common::host_probe_context();
    let defaults = dropwatch::DropwatchConfig::default();
    assert_eq!(defaults.protocols, ["tcp"], "upstream's default filter");
    let mut probe = dropwatch::DropwatchProbe::start(&defaults, &ctx).expect("start dropwatch");
    for _ in 0..5 {
        assert!(agent.metrics().contains("huatuo_bamai_"));
    }
    let on_agent_port = |d: &huatuo_bamai::events::EventDocument| {
        let tcp = layer(&d.tracer_data, "tcp");
        [tcp["sport"].as_u64(), tcp["dport"].as_u64()].contains(&Some(u64::from(agent.port)))
    };
    let (documents, _) =
        common::collect_until(&mut probe, &ctx, Duration::from_millis(1500), |_| false);
    let noise: Vec<_> = documents.iter().filter(|d| on_agent_port(d)).collect();
    assert!(noise.is_empty(), "scrapes made documents: {noise:#?}");

    // A SYN an iptables rule drops still is one.
    let port = closed_port();
    let netns = Netns::create("dwtcp");
    let port_text = port.to_string();
    netns.run(
        "iptables",
        &[
            "-A", "INPUT", "-p", "tcp", "--dport", &port_text, "-j", "DROP",
        ],
    );
    let inode = netns.inode();
    netns.in_thread(move || {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // The SYN (and its retransmits) are dropped: the connect times out.
        let _ = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(1200));
    });
    let syn = |d: &huatuo_bamai::events::EventDocument| {
        d.tracer_data["net_namespace_inum"].as_u64() == Some(inode)
            && layer(&d.tracer_data, "tcp")["dport"].as_u64() == Some(u64::from(port))
    };
    let (documents, _) = common::collect_until(&mut probe, &ctx, Duration::from_secs(3), |docs| {
        docs.iter().any(syn)
    });
    let document = documents
        .iter()
        .find(|d| syn(d))
        .expect("a document of the dropped SYN");
    common::upstream::assert_upstream_shape(document);
    let data = &document.tracer_data;
    assert_eq!(data["drop_reason"], "NETFILTER_DROP", "{data:#}");
    assert_eq!(data["layers"]["label"], "IPv4/TCP", "{data:#}");
    assert_eq!(layer(data, "tcp")["flags"], "SYN", "{data:#}");
    assert_eq!(layer(data, "ipv4")["flags"], "DF", "{data:#}");
}
