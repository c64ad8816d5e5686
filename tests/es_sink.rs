//! The Elasticsearch/OpenSearch sink end to end.
//!
//! * Against a real OpenSearch-compatible server (`osmem-server` from PyPI, installed by
//!   `scripts/install-deps.sh test`): documents arrive with `_id` = `tracer_id` in
//!   `huatuo_bamai`; the server is stopped mid-stream and started again on the same port, and
//!   every document published meanwhile arrives exactly once (`_version` 1), in publish order
//!   (`_seq_no`). The server keeps nothing across its restart, so the documents before the
//!   outage are checked before it.
//! * The spool survives a restart of the sink: what could not be sent (and what was still in
//!   memory) is replayed by the next sink on the same `spool_dir`.
//! * Through an in-process fake `_bulk` with scripted answers: a 429 request is retried, 429/503
//!   items are retried until they are indexed, a 400 item lands in the dead-letter file, and the
//!   metrics count each; a request refused as too large is split down to the one document.
//! * With root: the real agent binary, dropwatch documents from UDP datagrams to a closed port,
//!   the store as the ground truth and `ctl status` showing the sink spooling and connected.
//!
//! The sink runs in-process for the first three (its actor and the library's event bus), so
//! documents are published deterministically. Tests in this file run one at a time: the sink's
//! status line and the metrics recorder are process-wide.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use huatuo_bamai::actors::elasticsearch::{ElasticsearchSink, EsSinkArgs, EsSinkMsg};
use huatuo_bamai::config::{source_from, Config, FlagOverrides};
use huatuo_bamai::core::{AgentContext, PartDetail};
use huatuo_bamai::events::elasticsearch::{ElasticsearchConfig, SinkStatus, Spool};
use huatuo_bamai::events::EventDocument;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ractor::{Actor, ActorRef};
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("install the metrics recorder")
        })
        .clone()
}

/// Sum of the series of `name` whose labels include every pair.
fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = recorder().render();
    common::sum(&text, name, labels)
        + text
            .lines()
            .filter(|l| labels.is_empty() && l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
}

#[derive(Debug, Clone)]
struct Hit {
    id: String,
    index: String,
    version: u64,
    seq_no: u64,
    source_tracer_id: String,
}

/// Every document of `index`, in indexing order (`_seq_no`).
async fn hits(url: &str, index: &str) -> Vec<Hit> {
    let client = reqwest::Client::new();
    let _ = client.post(format!("{url}/{index}/_refresh")).send().await;
    let Ok(response) = client
        .get(format!(
            "{url}/{index}/_search?size=10000&version=true&seq_no_primary_term=true"
        ))
        .send()
        .await
    else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    let mut hits: Vec<Hit> = body["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| Hit {
            id: h["_id"].as_str().unwrap_or_default().to_string(),
            index: h["_index"].as_str().unwrap_or_default().to_string(),
            version: h["_version"].as_u64().unwrap_or(0),
            seq_no: h["_seq_no"].as_u64().unwrap_or(0),
            source_tracer_id: h["_source"]["tracer_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    hits.sort_by_key(|h| h.seq_no);
    hits
}

async fn wait_for_hits(url: &str, count: usize, timeout: Duration) -> Vec<Hit> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = hits(url, "huatuo_bamai").await;
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {timeout:?}; sink: {:?}",
            current_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sink_config(dir: &Path, address: &str) -> ElasticsearchConfig {
    ElasticsearchConfig {
        enabled: true,
        addresses: vec![address.to_string()],
        batch_size: 50,
        flush_interval_ms: 100,
        // Generous: a timed-out request is sent again (at least once), which these tests count.
        request_timeout_ms: 10_000,
        spool_dir: dir.join("spool"),
        dead_letter_file: dir.join("dead-letter.ndjson"),
        retry_backoff_initial_ms: 100,
        retry_backoff_max_ms: 400,
        ..Default::default()
    }
}

/// The context of the test running now (tests hold SERIAL), whose status board the sink reports on.
static CURRENT: Mutex<Option<Arc<AgentContext>>> = Mutex::new(None);

fn context() -> Arc<AgentContext> {
    let source = source_from(None, FlagOverrides::default(), Default::default());
    let ctx = Arc::new(AgentContext::new(source, recorder(), &Config::default()));
    *CURRENT.lock().unwrap() = Some(ctx.clone());
    ctx
}

/// What the sink last reported on the status board (the `elasticsearch` row of `ctl status`).
fn current_status() -> Option<SinkStatus> {
    let ctx = CURRENT.lock().unwrap().clone()?;
    match ctx.status.detail("elasticsearch")? {
        PartDetail::Elasticsearch(status) => Some(status),
        _ => None,
    }
}

type Sink = (ActorRef<EsSinkMsg>, tokio::task::JoinHandle<()>);

async fn start_sink(ctx: &Arc<AgentContext>, config: ElasticsearchConfig) -> Sink {
    let args = EsSinkArgs {
        config,
        ctx: ctx.clone(),
    };
    Actor::spawn(None, ElasticsearchSink, args)
        .await
        .expect("start the sink")
}

async fn stop_sink(sink: Sink) {
    sink.0.stop(None);
    sink.1.await.expect("sink stopped");
}

/// Publishes `n` documents numbered from `from`; returns their ids in publish order.
fn publish(ctx: &AgentContext, from: u64, n: u64) -> Vec<String> {
    (from..from + n)
        .map(|seq| {
            let doc = EventDocument::new("h", "r", "dropwatch", None, 0, json!({ "seq": seq }));
            let id = doc.tracer_id.clone();
            ctx.events.publish(doc);
            id
        })
        .collect()
}

fn spooled() -> u64 {
    current_status().map_or(0, |s| s.spooled_documents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_reaches_opensearch_once_across_an_outage() {
    let _serial = SERIAL.lock().await;
    let Some(bin) =
        common::osmem::binary("every_document_reaches_opensearch_once_across_an_outage")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::osmem::Osmem::start(&bin, "127.0.0.1:0");
    let addr = server.addr();
    let ctx = context();
    let sent_before = metric("huatuo_bamai_event_es_sent_total", &[]);
    let sink = start_sink(&ctx, sink_config(dir.path(), &server.url)).await;

    // Healthy: documents arrive under their tracer_id.
    let first = publish(&ctx, 0, 30);
    let found = wait_for_hits(&server.url, 30, Duration::from_secs(10)).await;
    assert_eq!(found.len(), 30, "{found:?}");
    for hit in &found {
        assert_eq!(hit.index, "huatuo_bamai");
        assert_eq!(hit.id, hit.source_tracer_id, "_id is the tracer_id");
    }
    let ids: BTreeSet<String> = found.iter().map(|h| h.id.clone()).collect();
    assert_eq!(ids, first.iter().cloned().collect());
    // The server shows the hits before the sink has read its answer and published its status.
    wait_for("the sink reports connected", Duration::from_secs(5), || {
        current_status().is_some_and(|s| s.connected)
    })
    .await;

    // Outage: the server goes away while documents keep coming.
    server.stop();
    let mut outage = Vec::new();
    for burst in 0..5 {
        outage.extend(publish(&ctx, 100 + burst * 20, 20));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_for(
        "all outage documents spooled",
        Duration::from_secs(10),
        || spooled() == 100,
    )
    .await;
    let sink_status = current_status().unwrap();
    assert!(!sink_status.connected, "{sink_status:?}");
    assert!(
        sink_status.summary().starts_with("spooling 100 documents"),
        "{}",
        sink_status.summary()
    );
    assert!(metric("huatuo_bamai_event_es_spool_documents", &[]) >= 100.0);

    // Back on the same port (empty: osmem keeps nothing); newer documents follow the spool.
    let server = common::osmem::Osmem::start(&bin, &addr);
    let after = publish(&ctx, 1000, 20);
    let mut expected = outage.clone();
    expected.extend(after);
    let found = wait_for_hits(&server.url, expected.len(), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found_again = hits(&server.url, "huatuo_bamai").await;
    assert_eq!(found_again.len(), found.len(), "nothing more arrives");
    let order: Vec<String> = found.iter().map(|h| h.id.clone()).collect();
    assert_eq!(
        order, expected,
        "every document once, in publish order (spool replayed before newer documents)"
    );
    let resent: Vec<&Hit> = found.iter().filter(|h| h.version != 1).collect();
    assert!(resent.is_empty(), "documents sent twice: {resent:?}");
    wait_for("spool drained", Duration::from_secs(5), || spooled() == 0).await;
    wait_for(
        "the sink reports connected again",
        Duration::from_secs(5),
        || current_status().is_some_and(|s| s.connected && s.last_error.is_none()),
    )
    .await;
    assert_eq!(
        metric("huatuo_bamai_event_es_sent_total", &[]) - sent_before,
        150.0
    );
    stop_sink(sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_survives_a_restart_of_the_sink() {
    let _serial = SERIAL.lock().await;
    let Some(bin) = common::osmem::binary("the_spool_survives_a_restart_of_the_sink") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    // Nobody listens here: every request fails.
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let sink = start_sink(&ctx, sink_config(dir.path(), &closed)).await;
    let mut expected = publish(&ctx, 0, 40);
    wait_for("documents spooled", Duration::from_secs(10), || {
        spooled() == 40
    })
    .await;
    expected.extend(publish(&ctx, 40, 10));
    stop_sink(sink).await;
    {
        let spool = Spool::open(&dir.path().join("spool"), 1 << 30).unwrap();
        assert_eq!(
            spool.documents(),
            50,
            "everything is on disk after the stop"
        );
    }

    // The next sink replays the spool; documents it still holds in memory when it stops (a
    // long flush interval) are spooled and sent by the one after.
    let server = common::osmem::Osmem::start(&bin, "127.0.0.1:0");
    let mut lazy = sink_config(dir.path(), &server.url);
    lazy.flush_interval_ms = 60_000;
    lazy.batch_size = 1000;
    let sink = start_sink(&ctx, lazy).await;
    let found = wait_for_hits(&server.url, 50, Duration::from_secs(10)).await;
    assert_eq!(found.len(), 50);
    wait_for("spool drained", Duration::from_secs(5), || spooled() == 0).await;
    expected.extend(publish(&ctx, 50, 5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hits(&server.url, "huatuo_bamai").await.len(),
        50,
        "held in memory"
    );
    stop_sink(sink).await;
    assert_eq!(spooled(), 5, "spooled at stop");

    let sink = start_sink(&ctx, sink_config(dir.path(), &server.url)).await;
    let found = wait_for_hits(&server.url, expected.len(), Duration::from_secs(20)).await;
    let order: Vec<String> = found.iter().map(|h| h.id.clone()).collect();
    assert_eq!(
        order, expected,
        "replayed once each, in order, after the restart"
    );
    assert!(found.iter().all(|h| h.version == 1), "{found:?}");
    wait_for("spool drained", Duration::from_secs(5), || spooled() == 0).await;
    stop_sink(sink).await;
}

/// One scripted answer of the fake `_bulk`.
#[derive(Clone)]
enum Answer {
    /// The whole request gets this status.
    Request(u16),
    /// One status per item (in order); 2xx is indexed.
    Items(Vec<u16>),
}

#[derive(Default)]
struct FakeState {
    script: Vec<Answer>,
    /// The `_id`s of each request received, and the index of their action.
    requests: Vec<Vec<String>>,
    indices: BTreeSet<String>,
}

fn item(status: u16) -> Value {
    let error = match status {
        200..=299 => return json!({"index": {"status": status}}),
        429 => {
            json!({"type": "es_rejected_execution_exception", "reason": "rejected execution: queue full"})
        }
        400 => json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [seq]"}),
        _ => {
            json!({"type": "unavailable_shards_exception", "reason": "primary shard is not active"})
        }
    };
    json!({"index": {"status": status, "error": error}})
}

async fn fake_bulk(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<FakeState>>>,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, String) {
    let text = String::from_utf8_lossy(&body).to_string();
    let mut ids = Vec::new();
    let mut indices = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if n % 2 == 0 {
            let action: Value = serde_json::from_str(line).unwrap_or_default();
            ids.push(action["index"]["_id"].as_str().unwrap_or("?").to_string());
            indices.insert(
                action["index"]["_index"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            );
        }
    }
    let mut state = state.lock().unwrap();
    let answer = if state.script.is_empty() {
        Answer::Items(vec![201; ids.len()])
    } else {
        state.script.remove(0)
    };
    let count = ids.len();
    state.requests.push(ids);
    state.indices.extend(indices);
    let ok = axum::http::StatusCode::OK;
    match answer {
        Answer::Request(status) => (
            axum::http::StatusCode::from_u16(status).unwrap_or(ok),
            json!({"error": {"type": "scripted", "reason": format!("scripted {status}")}, "status": status})
                .to_string(),
        ),
        Answer::Items(statuses) => {
            let items: Vec<Value> = statuses.iter().take(count).map(|s| item(*s)).collect();
            let errors = statuses.iter().any(|s| !(200..300).contains(s));
            (ok, json!({"errors": errors, "items": items}).to_string())
        }
    }
}

async fn start_fake(script: Vec<Answer>) -> (String, Arc<Mutex<FakeState>>) {
    let state = Arc::new(Mutex::new(FakeState {
        script,
        ..Default::default()
    }));
    let app = axum::Router::new()
        .route("/_bulk", axum::routing::post(fake_bulk))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, state)
}

fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead-letter lines are JSON"))
        .collect()
}

/// Counter values now, to compare after the scenario.
fn counters() -> HashMap<&'static str, f64> {
    let mut values = HashMap::new();
    values.insert("sent", metric("huatuo_bamai_event_es_sent_total", &[]));
    values.insert(
        "retried_item",
        metric("huatuo_bamai_event_es_retried_total", &[("reason", "item")]),
    );
    values.insert(
        "retried_request",
        metric(
            "huatuo_bamai_event_es_retried_total",
            &[("reason", "request")],
        ),
    );
    values.insert(
        "failed_parse",
        metric(
            "huatuo_bamai_event_es_failed_total",
            &[("reason", "mapper_parsing_exception")],
        ),
    );
    values.insert(
        "failed_413",
        metric(
            "huatuo_bamai_event_es_failed_total",
            &[("reason", "http_413")],
        ),
    );
    values.insert(
        "spooled",
        metric("huatuo_bamai_event_es_spooled_total", &[]),
    );
    values.insert(
        "dropped",
        metric(
            "huatuo_bamai_event_sink_dropped_total",
            &[("sink", "elasticsearch")],
        ),
    );
    values
}

fn delta(before: &HashMap<&'static str, f64>, name: &str) -> f64 {
    counters()[name] - before[name]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_is_retried_and_refused_items_are_dead_lettered() {
    let _serial = SERIAL.lock().await;
    let (url, fake) = start_fake(vec![
        Answer::Request(429),
        Answer::Items(vec![201, 429, 400, 503, 200]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    let before = counters();
    let mut config = sink_config(dir.path(), &url);
    config.batch_size = 5;
    config.flush_interval_ms = 1000;
    let sink = start_sink(&ctx, config.clone()).await;
    let ids = publish(&ctx, 0, 5);
    wait_for("the retried items indexed", Duration::from_secs(10), || {
        fake.lock().unwrap().requests.len() >= 3 && spooled() == 0
    })
    .await;
    // Nothing more is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = fake.lock().unwrap().requests.clone();
    assert_eq!(
        requests,
        vec![
            ids.clone(),                          // 429 for the whole request
            ids.clone(),                          // per-item answers
            vec![ids[1].clone(), ids[3].clone()], // the 429 and 503 items, again
        ]
    );
    assert_eq!(
        fake.lock().unwrap().indices,
        BTreeSet::from(["huatuo_bamai".to_string()])
    );
    let letters = dead_letters(&config.dead_letter_file);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["_id"], ids[2].as_str());
    assert_eq!(letters[0]["status"], 400);
    assert_eq!(letters[0]["reason"], "mapper_parsing_exception");
    assert_eq!(letters[0]["error"]["reason"], "failed to parse field [seq]");
    assert_eq!(letters[0]["document"]["tracer_id"], ids[2].as_str());
    assert_eq!(letters[0]["document"]["tracer_data"]["seq"], 2);

    assert_eq!(delta(&before, "sent"), 4.0, "items 0, 4, then 1 and 3");
    assert_eq!(delta(&before, "retried_request"), 5.0);
    assert_eq!(delta(&before, "retried_item"), 2.0);
    assert_eq!(delta(&before, "failed_parse"), 1.0);
    assert_eq!(
        delta(&before, "spooled"),
        7.0,
        "the batch, then the 2 items"
    );
    assert_eq!(delta(&before, "dropped"), 0.0);
    let sink_status = current_status().unwrap();
    assert_eq!(
        (sink_status.sent, sink_status.dead_lettered),
        (4, 1),
        "{sink_status:?}"
    );
    assert!(sink_status.connected && sink_status.last_error.is_none());
    stop_sink(sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_as_too_large_is_split_down_to_the_culprit() {
    let _serial = SERIAL.lock().await;
    let (url, fake) = start_fake(vec![
        Answer::Request(413),
        Answer::Items(vec![201, 201]),
        Answer::Request(413),
        Answer::Items(vec![201]),
        Answer::Request(413),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    let before = counters();
    let mut config = sink_config(dir.path(), &url);
    config.batch_size = 4;
    config.flush_interval_ms = 1000;
    let sink = start_sink(&ctx, config.clone()).await;
    let ids = publish(&ctx, 0, 4);
    wait_for("the split requests", Duration::from_secs(10), || {
        fake.lock().unwrap().requests.len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sizes: Vec<usize> = fake.lock().unwrap().requests.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 2, 2, 1, 1]);
    let letters = dead_letters(&config.dead_letter_file);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["_id"], ids[3].as_str());
    assert_eq!(letters[0]["status"], 413);
    assert_eq!(delta(&before, "sent"), 3.0);
    assert_eq!(delta(&before, "failed_413"), 1.0);
    stop_sink(sink).await;
}

/// With root: the agent binary, its dropwatch probe and its store. UDP datagrams to a closed
/// port become documents; every document the store holds reaches osmem-server once, also those
/// made while the server was down, and `ctl status` says what the sink is doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ships_dropwatch_documents_through_an_outage() {
    let _serial = SERIAL.lock().await;
    let test = "the_agent_ships_dropwatch_documents_through_an_outage";
    if !common::bpf_available(test) {
        return;
    }
    let Some(bin) = common::osmem::binary(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::osmem::Osmem::start(&bin, "127.0.0.1:0");
    let addr = server.addr();
    let extra = format!(
        "[probes.dropwatch]\nprotocols = [\"udp\"]\n\
         [events.elasticsearch]\nenabled = true\naddresses = [\"{}\"]\nflush_interval_ms = 200\n\
         retry_backoff_initial_ms = 200\nretry_backoff_max_ms = 500\n\
         spool_dir = \"{}\"\ndead_letter_file = \"{}\"\n",
        server.url,
        dir.path().join("spool").display(),
        dir.path().join("dead.ndjson").display(),
    );
    let agent =
        tokio::task::spawn_blocking(move || common::Agent::start_with(&["dropwatch"], &extra))
            .await
            .unwrap();
    let port = closed_udp_port();

    send_datagrams(port, 10);
    let agent = wait_blocking(agent, |a| store_ids(a).len() >= 10).await;
    let stored = store_ids(&agent);
    let found = wait_for_hits(&server.url, stored.len(), Duration::from_secs(10)).await;
    let in_es: BTreeSet<String> = found.iter().map(|h| h.id.clone()).collect();
    for id in &stored {
        assert!(in_es.contains(id), "{id} not in OpenSearch: {found:?}");
    }
    assert!(
        status_line(&agent).contains("connected to"),
        "{}",
        status_line(&agent)
    );

    server.stop();
    let before_outage: BTreeSet<String> = store_ids(&agent).into_iter().collect();
    send_datagrams(port, 20);
    let agent = wait_blocking(agent, |a| status_line(a).contains("spooling")).await;
    let server = common::osmem::Osmem::start(&bin, &addr);
    send_datagrams(port, 5);
    // The probe drains its ring once a second: wait for the store, not for a fixed time.
    let new_ids = move |a: &common::Agent| {
        store_ids(a)
            .into_iter()
            .filter(|id| !before_outage.contains(id))
            .collect::<BTreeSet<String>>()
    };
    let counted = new_ids.clone();
    let agent = wait_blocking(agent, move |a| counted(a).len() >= 25).await;
    let expected = new_ids(&agent);
    assert!(expected.len() >= 25, "{} documents", expected.len());
    // Other drops of the host may be indexed too: wait until every expected id is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = wait_for_hits(&server.url, expected.len(), Duration::from_secs(20)).await;
    while !expected.iter().all(|id| found.iter().any(|h| &h.id == id)) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        found = wait_for_hits(&server.url, found.len() + 1, Duration::from_millis(500)).await;
    }
    let in_es: Vec<String> = found.iter().map(|h| h.id.clone()).collect();
    let unique: BTreeSet<String> = in_es.iter().cloned().collect();
    assert_eq!(unique.len(), in_es.len(), "ids unique");
    for id in &expected {
        assert!(unique.contains(id), "{id} missing after the outage");
    }
    assert!(found.iter().all(|h| h.version == 1), "{found:?}");
    let metrics = agent.metrics();
    let spooled_total = common::sample(&metrics, "huatuo_bamai_event_es_spooled_total", &[]);
    assert!(
        spooled_total.is_some_and(|n| n >= 20.0),
        "{spooled_total:?}"
    );
    let sent_total = common::sample(&metrics, "huatuo_bamai_event_es_sent_total", &[]);
    assert!(sent_total.is_some_and(|n| n >= 35.0), "{sent_total:?}");
    let agent = wait_blocking(agent, |a| {
        let line = status_line(a);
        line.contains("connected to") && !line.contains("replaying")
    })
    .await;
    drop(agent);
}

/// The ids of the dropwatch documents in the agent's store (the ground truth).
fn store_ids(agent: &common::Agent) -> Vec<String> {
    agent.event_ids("dropwatch")
}

fn closed_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().unwrap().port()
}

fn send_datagrams(port: u16, n: usize) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    for _ in 0..n {
        let _ = socket.send_to(b"es-sink", ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The DETAIL of the `elasticsearch` row of `ctl status`.
fn status_line(agent: &common::Agent) -> String {
    let out = agent.ctl(&["status"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("elasticsearch"))
        .unwrap_or_default()
        .to_string()
}

/// Polls `done` on the agent from the blocking pool (the harness is synchronous) for 20 s.
async fn wait_blocking(
    agent: common::Agent,
    done: impl Fn(&common::Agent) -> bool + Send + 'static,
) -> common::Agent {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&agent) {
            assert!(
                Instant::now() < deadline,
                "condition not met; status: {}\n{}",
                status_line(&agent),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        agent
    })
    .await
    .unwrap()
}
