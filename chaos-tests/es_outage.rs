//! Elasticsearch down while events flow: osmem-server is frozen (SIGSTOP: connections hang, the
//! harder case for a client than a refused connect; refused connects and a restarted, empty
//! server are tests/es_sink.rs's) for `HUATUO_CHAOS_ES_OUTAGE_SECS` (20 s here, 600 s under
//! `make soak`) while UDP drops keep producing dropwatch documents. After it thaws, the set of
//! documents in the store and the set indexed by the server must be the same, exactly.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::osmem::{self, Osmem};
use crate::common::{bpf_available, http_get, http_request, sample, Agent};
use crate::{Scraper, SERIAL};

/// Documents a run aims at: below the page size of `/v1/events` and `_search` (10 000), so
/// both sides are compared whole.
const MAX_DOCUMENTS: usize = 8_000;

fn outage() -> Duration {
    let secs = std::env::var("HUATUO_CHAOS_ES_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

fn store_ids(agent: &Agent) -> BTreeSet<String> {
    agent.event_ids("dropwatch").into_iter().collect()
}

/// Ids of the dropwatch documents the server holds (after a refresh).
fn indexed_ids(port: u16) -> BTreeSet<String> {
    let _ = http_request(port, "POST", "/huatuo_bamai/_refresh", "");
    let Ok((200, body)) = http_get(port, "/huatuo_bamai/_search?size=10000") else {
        return BTreeSet::new();
    };
    let reply: Value = serde_json::from_str(&body).unwrap_or_default();
    reply["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter(|h| h["_source"]["tracer_name"] == "dropwatch")
                .filter_map(|h| h["_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn metric(agent: &Agent, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&agent.metrics(), name, labels).unwrap_or(f64::NAN)
}

fn signal(server: &Osmem, sig: i32) {
    let rc = unsafe { libc::kill(server.child.id() as i32, sig) };
    assert_eq!(rc, 0, "signal {sig} to osmem-server");
}

#[test]
fn es_outage_loses_no_document_while_events_flow() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "es_outage_loses_no_document_while_events_flow";
    if !bpf_available(test) {
        return;
    }
    let Some(bin) = osmem::binary(test) else {
        return;
    };
    let server = Osmem::start(&bin, "127.0.0.1:0");
    let store_port: u16 = server
        .addr()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("osmem port");
    let spool = tempfile::tempdir().expect("spool dir");
    let agent = Agent::start_with(
        &["dropwatch"],
        &format!(
            "[probes.dropwatch]\nprotocols = [\"udp\"]\nmax_events_per_second = 20\n\
             [events.elasticsearch]\nenabled = true\naddresses = [\"{}\"]\nflush_interval_ms = 200\n\
             request_timeout_ms = 2000\nretry_backoff_initial_ms = 200\nretry_backoff_max_ms = 2000\n\
             spool_dir = \"{}\"\ndead_letter_file = \"{}\"\n",
            server.url,
            spool.path().join("spool").display(),
            spool.path().join("dead.ndjson").display(),
        ),
    );
    let scraper = Scraper::start(agent.port);
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    // A steady trickle for the whole test: ~20 documents a second, fewer for a long outage so
    // that every document of the run fits in one page of both searches (10 000 at most).
    let run_secs = outage().as_secs_f64() + 6.0;
    let period = Duration::from_secs_f64((run_secs / MAX_DOCUMENTS as f64).max(0.05));
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
            while !stop.load(Ordering::Relaxed) {
                let _ = socket.send_to(b"event", ("127.0.0.1", port));
                std::thread::sleep(period);
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(&agent, "huatuo_bamai_event_es_connected", &[]), 1.0);

    signal(&server, libc::SIGSTOP);
    let frozen_at = Instant::now();
    let mut saw_spooling = false;
    while frozen_at.elapsed() < outage() {
        std::thread::sleep(Duration::from_secs(1));
        saw_spooling |= metric(&agent, "huatuo_bamai_event_es_connected", &[]) == 0.0
            && metric(&agent, "huatuo_bamai_event_es_spool_documents", &[]) > 0.0;
    }
    let in_outage = store_ids(&agent).len();
    signal(&server, libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    trickle.join().expect("trickle");

    // Drained: the sink has nothing pending and the two sides hold the same documents.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (stored, indexed) = loop {
        let stored = store_ids(&agent);
        let indexed = indexed_ids(store_port);
        let pending = metric(&agent, "huatuo_bamai_event_es_pending_documents", &[]);
        if (stored == indexed && pending == 0.0) || Instant::now() > deadline {
            break (stored, indexed);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (ok, failed) = scraper.finish();
    assert!(
        saw_spooling,
        "the sink never reported the outage (connected 0, spool > 0)"
    );
    let missing: Vec<&String> = stored.difference(&indexed).collect();
    let extra: Vec<&String> = indexed.difference(&stored).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} stored, {} indexed; missing {missing:?}; not in the store {extra:?}",
        stored.len(),
        indexed.len()
    );
    assert!(
        stored.len() < 10_000,
        "{} documents: more than one page, the comparison would be partial",
        stored.len()
    );
    // Half the trickle's rate at least (documents are rate-limited and sampled by nothing else).
    let expected_at_least = (outage().as_secs_f64() / period.as_secs_f64() / 2.0) as usize;
    assert!(
        in_outage >= expected_at_least,
        "only {in_outage} documents by the end of a {:?} outage",
        outage()
    );
    let dropped = metric(
        &agent,
        "huatuo_bamai_event_sink_dropped_total",
        &[("sink", "elasticsearch")],
    );
    assert!(
        dropped.is_nan() || dropped == 0.0,
        "the sink dropped {dropped} documents"
    );
    assert_eq!(
        failed, 0,
        "/metrics failed {failed} times in the outage ({ok} ok)"
    );
    eprintln!(
        "es outage {:?}: {} documents stored, all {} indexed after it",
        outage(),
        stored.len(),
        indexed.len()
    );
}
