//! Grafana's Pyroscope datasource against the agent: the querier endpoints, posted the bodies
//! Grafana sends (Connect JSON, and protobuf as its Go client does), answer from the profile
//! windows published on the bus; the flame graph tree (names, levels, values) is the merge of
//! the known synthetic windows.

mod pprof_support;

use std::sync::Arc;
use std::time::Duration;

use huatuo_bamai::actors::http::{HttpArgs, HttpServer};
use huatuo_bamai::config::{source_from, Config, FlagOverrides};
use huatuo_bamai::core::{AgentContext, SupervisorMsg};
use huatuo_bamai::profiling::proto::querier as pb;
use metrics_exporter_prometheus::PrometheusBuilder;
use pprof_support::{cpu_window, offcpu_window, START_NS};
use prost::Message;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};

/// Stands in for the supervisor: the querier never calls it.
struct NoSupervisor;

impl Actor for NoSupervisor {
    type Msg = SupervisorMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

const BASE: &str = "/v1/profiles/flamegraph/querier.v1.QuerierService";
const WINDOW_MS: i64 = 10_000;

struct Agent {
    url: String,
    client: reqwest::Client,
}

impl Agent {
    async fn post_json(&self, method: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{BASE}/{method}", self.url))
            .header("Content-Type", "application/json")
            .header("Connect-Protocol-Version", "1")
            .body(body.to_string())
            .send()
            .await
            .expect("querier answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn start() -> (Agent, Arc<AgentContext>) {
    let source = source_from(None, FlagOverrides::default(), Default::default());
    let prometheus = PrometheusBuilder::new().build_recorder().handle();
    let ctx = Arc::new(AgentContext::new(source, prometheus, &Config::default()));
    let (supervisor, _) = Actor::spawn(None, NoSupervisor, ()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = HttpArgs {
        listen: format!("127.0.0.1:{port}"),
        labels: Vec::new(),
        ctx: ctx.clone(),
        supervisor,
        procfs_root: "/proc".into(),
        restart_interval_secs: 1,
        application_name: "huatuo-bamai".into(),
        limits: huatuo_bamai::actors::http::Limits::from_config(&Config::default().http),
        tasks: Default::default(),
    };
    Actor::spawn(None, HttpServer, args).await.expect("http");
    let start_ms = (START_NS / 1_000_000) as i64;
    ctx.profiles.publish(Arc::new(cpu_window(START_NS)));
    ctx.profiles
        .publish(Arc::new(cpu_window(START_NS + 10_000_000_000)));
    ctx.profiles.publish(Arc::new(offcpu_window(START_NS)));
    let agent = Agent {
        url: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
    };
    // The ring fills from the bus asynchronously.
    for _ in 0..100 {
        let (_, types) = agent
            .post_json("ProfileTypes", json!({"start": start_ms.to_string(), "end": (start_ms + 3 * WINDOW_MS).to_string()}))
            .await;
        if types["profileTypes"]
            .as_array()
            .is_some_and(|t| t.len() == 3)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (agent, ctx)
}

/// Levels of a JSON flame graph as (name, absolute x, total, self) per node.
fn levels(flamegraph: &Value) -> Vec<Vec<(String, i64, i64, i64)>> {
    let names: Vec<String> = serde_json::from_value(flamegraph["names"].clone()).unwrap();
    flamegraph["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|level| {
            let values: Vec<i64> = level["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().parse().unwrap())
                .collect();
            let mut end = 0;
            values
                .chunks(4)
                .map(|n| {
                    let x = end + n[0];
                    end = x + n[1];
                    (names[n[3] as usize].clone(), x, n[1], n[2])
                })
                .collect()
        })
        .collect()
}

fn node(name: &str, x: i64, total: i64, self_value: i64) -> (String, i64, i64, i64) {
    (name.to_string(), x, total, self_value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_sees_profile_types_labels_and_the_merged_flame_graph() {
    let (agent, _ctx) = start().await;
    let start_ms = (START_NS / 1_000_000) as i64;
    let range = |windows: i64| json!({"start": start_ms.to_string(), "end": (start_ms + windows * WINDOW_MS - 1).to_string()});

    let (status, types) = agent.post_json("ProfileTypes", range(2)).await;
    assert_eq!(status, 200, "{types}");
    let ids: Vec<&str> = types["profileTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ID"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
            "process_cpu:samples:count:cpu:nanoseconds",
            "process_offcpu:offcpu:nanoseconds:offcpu:nanoseconds",
        ]
    );
    assert_eq!(types["profileTypes"][0]["sampleType"], "cpu");

    let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
    let selector = format!("{{__profile_type__=\"{cpu}\"}}");
    let mut body = range(2);
    body["matchers"] = json!([selector]);
    let (_, names) = agent.post_json("LabelNames", body.clone()).await;
    for name in [
        "service_name",
        "hostname",
        "container_name",
        "pod",
        "comm",
        "pid",
    ] {
        assert!(
            names["names"].as_array().unwrap().iter().any(|n| n == name),
            "{name} missing: {names}"
        );
    }
    body["name"] = json!("container_name");
    let (_, values) = agent.post_json("LabelValues", body.clone()).await;
    assert_eq!(values["names"], json!(["web"]));
    body["name"] = json!("comm");
    let (_, values) = agent.post_json("LabelValues", body).await;
    assert_eq!(values["names"], json!(["busy", "idler"]));

    // The container's CPU over both windows: 2 × (800 ms spin_hot + 150 ms memcpy).
    let mut query = range(2);
    query["profileTypeID"] = json!(cpu);
    query["labelSelector"] = json!("{container_name=\"web\", service_name=\"huatuo-bamai\"}");
    query["maxNodes"] = json!("16384");
    let (status, reply) = agent
        .post_json("SelectMergeStacktraces", query.clone())
        .await;
    assert_eq!(status, 200, "{reply}");
    let graph = &reply["flamegraph"];
    assert_eq!(graph["total"], "1900000000");
    assert_eq!(graph["maxSelf"], "1600000000");
    assert_eq!(
        levels(graph),
        vec![
            vec![node("total", 0, 1_900_000_000, 0)],
            vec![node("busy_main", 0, 1_900_000_000, 0)],
            vec![node("work", 0, 1_900_000_000, 0)],
            vec![
                node("memcpy", 0, 300_000_000, 300_000_000),
                node("spin_hot", 300_000_000, 1_600_000_000, 1_600_000_000),
            ],
        ]
    );

    // One window only, every process, sample counts: the host's idler is there too.
    let mut query = range(1);
    query["profileTypeID"] = json!("process_cpu:samples:count:cpu:nanoseconds");
    query["labelSelector"] = json!("{}");
    let (_, reply) = agent.post_json("SelectMergeStacktraces", query).await;
    let tree = levels(&reply["flamegraph"]);
    assert_eq!(tree[0], vec![node("total", 0, 100, 0)]);
    assert_eq!(
        tree[1],
        vec![node("busy_main", 0, 95, 0), node("idler_main", 95, 5, 0)]
    );
    assert_eq!(tree[3].last(), Some(&node("do_syscall_64", 95, 5, 5)));

    // Off-CPU: blocked time at the blocking stacks, selected by regex.
    let mut query = range(1);
    query["profileTypeID"] = json!("process_offcpu:offcpu:nanoseconds:offcpu:nanoseconds");
    query["labelSelector"] = json!("{comm=~\"bu.+\"}");
    let (_, reply) = agent.post_json("SelectMergeStacktraces", query).await;
    let tree = levels(&reply["flamegraph"]);
    assert_eq!(
        tree[3],
        vec![node("pipe_read", 0, 2_000_000_000, 2_000_000_000)]
    );

    // SelectSeries (Grafana's "both" query): one point a window.
    let mut query = range(2);
    query["profileTypeID"] = json!(cpu);
    query["labelSelector"] = json!("{container_name=\"web\"}");
    query["step"] = json!(10.0);
    query["groupBy"] = json!(["container_name"]);
    let (_, reply) = agent.post_json("SelectSeries", query).await;
    let series = &reply["series"][0];
    assert_eq!(
        series["labels"],
        json!([{"name": "container_name", "value": "web"}])
    );
    let points: Vec<f64> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(points, [950_000_000.0, 950_000_000.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_requests_get_protobuf_flame_graphs_and_bad_input_is_named() {
    let (agent, _ctx) = start().await;
    let start_ms = (START_NS / 1_000_000) as i64;
    let request = pb::SelectMergeStacktracesRequest {
        profile_type_id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into(),
        label_selector: "{pod=\"web-0\"}".into(),
        start: start_ms,
        end: start_ms + WINDOW_MS - 1,
        max_nodes: Some(16384),
        format: 0,
    };
    let response = agent
        .client
        .post(format!("{}{BASE}/SelectMergeStacktraces", agent.url))
        .header("Content-Type", "application/proto")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let reply = pb::SelectMergeStacktracesResponse::decode(response.bytes().await.unwrap())
        .expect("a SelectMergeStacktracesResponse");
    let graph = reply.flamegraph.expect("a flame graph");
    assert_eq!(graph.total, 950_000_000);
    assert_eq!(
        graph.names,
        ["total", "busy_main", "work", "memcpy", "spin_hot"]
    );
    assert_eq!(graph.levels.len(), 4);

    let (status, error) = agent
        .post_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": "memory:alloc_space:bytes:space:bytes", "labelSelector": "{}"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid_argument");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("memory:alloc_space"),
        "{error}"
    );
    let (status, error) = agent
        .post_json(
            "SelectMergeStacktraces",
            json!({"profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds", "labelSelector": "{pod=web}"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        error["message"].as_str().unwrap().contains("quoted"),
        "{error}"
    );
    let (status, error) = agent.post_json("Diff", json!({})).await;
    assert_eq!(status, 501);
    assert_eq!(error["code"], "unimplemented");
}
