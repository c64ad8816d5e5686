//! The Pyroscope pusher against a server in the test that implements Pyroscope's documented
//! `/ingest` contract (`name`, `from`, `until`, `format=pprof`, multipart file `profile`): each
//! body is decoded by `go tool pprof -raw`; an outage then recovery delivers what was queued,
//! and what did not fit the queue is counted.

mod pprof_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use huatuo_bamai::actors::pyroscope::{PyroscopeArgs, PyroscopeService};
use huatuo_bamai::config::{source_from, Config, FlagOverrides};
use huatuo_bamai::core::{AgentContext, PartDetail};
use huatuo_bamai::profiling::pyroscope::{PyroscopeConfig, PyroscopeStatus};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pprof_support::{cpu_window, go_pprof, offcpu_window, START_NS};
use ractor::Actor;

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

/// Sum of the series of `name` whose label text contains `label` ("" = any).
fn metric(name: &str, label: &str) -> f64 {
    recorder()
        .render()
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(Debug, Clone)]
struct Ingested {
    query: HashMap<String, String>,
    headers: HeaderMap,
    pprof: Vec<u8>,
}

#[derive(Clone, Default)]
struct Contract {
    received: Arc<Mutex<Vec<Ingested>>>,
}

/// The `profile` file field of a multipart/form-data body.
fn profile_part(content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .ok_or("multipart without a boundary")?;
    let delimiter = format!("--{boundary}");
    let text_positions: Vec<usize> = body
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in text_positions.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let Some(split) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        if head.contains("name=\"profile\"") {
            let data = &part[split + 4..];
            return Ok(data.strip_suffix(b"\r\n").unwrap_or(data).to_vec());
        }
    }
    Err("no `profile` part".into())
}

async fn ingest(
    State(contract): State<Contract>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    for key in ["name", "from", "until"] {
        if !query.contains_key(key) {
            return (StatusCode::BAD_REQUEST, format!("{key} is required"));
        }
    }
    if query.get("format").map(String::as_str) != Some("pprof") {
        return (StatusCode::BAD_REQUEST, "format must be pprof".into());
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let pprof = match profile_part(&content_type, &body) {
        Ok(pprof) => pprof,
        Err(e) => return (StatusCode::BAD_REQUEST, e),
    };
    contract.received.lock().unwrap().push(Ingested {
        query,
        headers,
        pprof,
    });
    (StatusCode::OK, String::new())
}

struct Server {
    contract: Contract,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(listener: tokio::net::TcpListener) -> Server {
    let contract = Contract::default();
    let app = Router::new()
        .route("/ingest", post(ingest))
        .with_state(contract.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { contract, task }
}

fn config(address: String) -> PyroscopeConfig {
    let mut config = PyroscopeConfig {
        enabled: true,
        address,
        timeout_ms: 1000,
        retry_backoff_initial_ms: 50,
        retry_backoff_max_ms: 200,
        tenant_id: "tenant-a".into(),
        ..Default::default()
    };
    config.labels.insert("env".into(), "test".into());
    config
}

fn context() -> Arc<AgentContext> {
    let source = source_from(None, FlagOverrides::default(), Default::default());
    Arc::new(AgentContext::new(source, recorder(), &Config::default()))
}

fn status(ctx: &AgentContext) -> PyroscopeStatus {
    match ctx.status.detail("pyroscope") {
        Some(PartDetail::Pyroscope(status)) => status,
        _ => PyroscopeStatus::default(),
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Decodes a received pprof with `go tool pprof -raw`.
fn raw(pprof: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pushed.pprof");
    std::fs::write(&file, pprof).unwrap();
    go_pprof(&["-raw"], &file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_window_is_pushed_per_kind_and_container_with_its_labels() {
    let _serial = SERIAL.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = serve(listener).await;
    let ctx = context();
    let ok_before = metric("huatuo_bamai_pyroscope_push_total", "result=\"ok\"");
    let (actor, handle) = Actor::spawn(
        None,
        PyroscopeService,
        PyroscopeArgs {
            config: config(address.clone()),
            ctx: ctx.clone(),
        },
    )
    .await
    .expect("start the pusher");

    ctx.profiles.publish(Arc::new(cpu_window(START_NS)));
    ctx.profiles
        .publish(Arc::new(offcpu_window(START_NS + 10_000_000_000)));
    let received = server.contract.received.clone();
    wait_for("4 pushes", || received.lock().unwrap().len() == 4).await;
    let got = received.lock().unwrap().clone();
    let names: Vec<&str> = got.iter().map(|r| r.query["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "huatuo-bamai.cpu{host=node-1,env=test}",
            "huatuo-bamai.cpu{host=node-1,container=web,pod=web-0,env=test}",
            "huatuo-bamai.offcpu{host=node-1,env=test}",
            "huatuo-bamai.offcpu{host=node-1,container=web,pod=web-0,env=test}",
        ]
    );
    let start_s = START_NS / 1_000_000_000;
    assert_eq!(got[0].query["from"], start_s.to_string());
    assert_eq!(got[0].query["until"], (start_s + 10).to_string());
    assert_eq!(got[0].query["sampleRate"], "100");
    assert_eq!(got[0].query["spyName"], "huatuo-bamai");
    assert_eq!(got[2].query["from"], (start_s + 10).to_string());
    assert!(!got[2].query.contains_key("sampleRate"));
    assert_eq!(got[0].headers["x-scope-orgid"], "tenant-a");

    // The host push holds only the host process, the container push only the container's.
    let host = raw(&got[0].pprof);
    assert!(
        host.contains("do_syscall_64") && !host.contains("spin_hot"),
        "{host}"
    );
    assert!(
        host.contains("comm:[idler]") && !host.contains("pid:"),
        "{host}"
    );
    let web = raw(&got[1].pprof);
    assert!(web.contains("spin_hot") && web.contains("memcpy"), "{web}");
    assert!(!web.contains("idler_main"), "{web}");
    assert!(web.contains("samples/count cpu/nanoseconds"), "{web}");
    let blocked = raw(&got[3].pprof);
    assert!(
        blocked.contains("offcpu/nanoseconds") && blocked.contains("pipe_read"),
        "{blocked}"
    );
    assert!(blocked.contains("2000000000"), "{blocked}");

    wait_for("status", || status(&ctx).pushed == 4).await;
    let shown = status(&ctx);
    assert!(shown.connected && shown.queued_windows == 0, "{shown:?}");
    assert_eq!(
        ctx.status.detail("pyroscope").map(|d| d.summary()),
        Some(format!("pushing to {address}; 4 pushed"))
    );
    assert_eq!(
        metric("huatuo_bamai_pyroscope_push_total", "result=\"ok\"") - ok_before,
        4.0
    );
    actor.stop(None);
    handle.await.unwrap();
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_at_most_the_queue_and_the_rest_arrives_when_it_is_back() {
    let _serial = SERIAL.lock().await;
    // A port with nobody listening: the server is down.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let address = format!("http://127.0.0.1:{port}");
    let ctx = context();
    let dropped_before = metric("huatuo_bamai_pyroscope_dropped_total", "queue_full");
    let errors_before = metric("huatuo_bamai_pyroscope_push_total", "result=\"error\"");
    let mut cfg = config(address.clone());
    cfg.queue_windows = 3;
    let (actor, handle) = Actor::spawn(
        None,
        PyroscopeService,
        PyroscopeArgs {
            config: cfg,
            ctx: ctx.clone(),
        },
    )
    .await
    .expect("start the pusher");

    let windows: Vec<u64> = (0..5).map(|i| START_NS + i * 10_000_000_000).collect();
    for (i, start) in windows.iter().enumerate() {
        ctx.profiles.publish(Arc::new(cpu_window(*start)));
        wait_for("the window queued", || {
            let s = status(&ctx);
            s.queued_windows == (i + 1).min(3)
                && s.failed > 0
                && s.dropped == (i as u64).saturating_sub(2)
        })
        .await;
    }
    let down = status(&ctx);
    assert!(!down.connected, "{down:?}");
    assert_eq!(down.dropped, 2, "{down:?}");
    assert!(
        ctx.status
            .detail("pyroscope")
            .map(|d| d.summary())
            .unwrap_or_default()
            .starts_with(&format!("queueing 3 windows: {address} unavailable")),
        "{down:?}"
    );
    assert_eq!(
        metric("huatuo_bamai_pyroscope_dropped_total", "queue_full") - dropped_before,
        2.0
    );
    assert!(metric("huatuo_bamai_pyroscope_push_total", "result=\"error\"") > errors_before);

    // The server comes up on that port: the 3 queued windows (2 pushes each) arrive, oldest first.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = serve(listener).await;
    let received = server.contract.received.clone();
    wait_for("6 pushes", || received.lock().unwrap().len() == 6).await;
    let froms: Vec<u64> = received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.query["from"].parse().unwrap())
        .collect();
    let expected: Vec<u64> = windows[2..]
        .iter()
        .flat_map(|s| [s / 1_000_000_000; 2])
        .collect();
    assert_eq!(froms, expected);
    for pushed in received.lock().unwrap().iter() {
        let text = raw(&pushed.pprof);
        assert!(text.contains("Locations"), "{text}");
    }
    wait_for("the queue to empty", || {
        let s = status(&ctx);
        s.queued_windows == 0 && s.connected
    })
    .await;
    // Nothing more than the queue was lost, and nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 6);
    assert_eq!(status(&ctx).dropped, 2);
    actor.stop(None);
    handle.await.unwrap();
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_it_subscribes_to_nothing_and_says_so() {
    let _serial = SERIAL.lock().await;
    let ctx = context();
    let (actor, handle) = Actor::spawn(
        None,
        PyroscopeService,
        PyroscopeArgs {
            config: PyroscopeConfig::default(),
            ctx: ctx.clone(),
        },
    )
    .await
    .expect("start the pusher");
    assert_eq!(ctx.profiles.publish(Arc::new(cpu_window(START_NS))), 0);
    assert_eq!(
        ctx.status.detail("pyroscope").map(|d| d.summary()),
        Some("disabled (profiling.pyroscope.enabled = false)".to_string())
    );
    actor.stop(None);
    handle.await.unwrap();
}
