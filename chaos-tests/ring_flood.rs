//! A ring buffer flooded faster than the agent drains it: the kernel side drops what finds no
//! room, the loss is counted exactly in `huatuo_bamai_event_ring_lost_total`, every record that
//! did fit becomes a document, and the agent keeps answering.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{bpf_available, sample, Agent};
use crate::{Scraper, SERIAL};

/// `Udp: NoPorts` of /proc/net/snmp: datagrams to a closed port, each one a kfree_skb the
/// dropwatch program sees. The kernel's own count, independent of the agent.
fn udp_no_ports() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").expect("/proc/net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (
        udp.next().expect("Udp header"),
        udp.next().expect("Udp values"),
    );
    let at = names
        .split_whitespace()
        .position(|n| n == "NoPorts")
        .expect("NoPorts column");
    values
        .split_whitespace()
        .nth(at)
        .and_then(|v| v.parse().ok())
        .expect("NoPorts value")
}

fn counter(agent: &Agent, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&agent.metrics(), name, labels).unwrap_or(0.0)
}

#[test]
fn flooded_ring_counts_every_lost_record_and_the_agent_stays_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("flooded_ring_counts_every_lost_record_and_the_agent_stays_up") {
        return;
    }
    // No rate limit and a slow drain: the 256 KiB ring fills within each 3 s interval.
    let agent = Agent::start_with(
        &["dropwatch"],
        "[probes.dropwatch]\nprotocols = [\"udp\"]\nmax_events_per_second = 0\ninterval_ms = 3000\n",
    );
    let scraper = Scraper::start(agent.port);
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let lost_labels = [("probe", "dropwatch"), ("reason", "ring_full")];
    let published_labels = [("tracer", "dropwatch")];
    let published_before = counter(
        &agent,
        "huatuo_bamai_events_published_total",
        &published_labels,
    );
    let lost_before = counter(&agent, "huatuo_bamai_event_ring_lost_total", &lost_labels);
    let no_ports_before = udp_no_ports();

    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let _ = socket.send_to(b"flood", ("127.0.0.1", port));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.join().expect("flooder");
    }
    let dropped = udp_no_ports() - no_ports_before;

    // Everything queued is drained within a few intervals; then the books must balance.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (published, lost) = loop {
        let published = counter(
            &agent,
            "huatuo_bamai_events_published_total",
            &published_labels,
        ) - published_before;
        let lost =
            counter(&agent, "huatuo_bamai_event_ring_lost_total", &lost_labels) - lost_before;
        let accounted = published + lost;
        if accounted >= dropped as f64 || Instant::now() > deadline {
            break (published, lost);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (ok, failed) = scraper.finish();
    assert!(
        lost > 0.0,
        "no ring loss counted: {dropped} drops, {published} documents"
    );
    assert!(
        published > 0.0,
        "nothing got through: {dropped} drops, {lost} lost"
    );
    // Stray UDP to closed ports elsewhere on the host may add a few to the kernel's count.
    let accounted = published + lost;
    let slack = 10.0 + dropped as f64 * 0.001;
    assert!(
        (accounted - dropped as f64).abs() <= slack,
        "kernel NoPorts {dropped} vs documents {published} + ring_full {lost} = {accounted}"
    );
    assert_eq!(
        failed, 0,
        "/metrics failed {failed} times under the flood ({ok} ok)"
    );
    assert_eq!(agent.actor_state("dropwatch"), "running");
    eprintln!("flood: {dropped} drops → {published} documents, {lost} lost in the ring");
}
