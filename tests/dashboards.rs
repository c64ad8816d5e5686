//! Upstream's Grafana dashboards against a real run of our agent: every metric name their
//! Prometheus panels query (tests/fixtures/upstream/dashboards/, extracted from upstream's
//! build/docker/grafana/dashboards by scripts/extract-dashboard-queries.py) is exported, except
//! the names listed in `NOT_EXPORTED` with the reason, which must stay absent (so the list cannot
//! go stale). Root: containers with their own network namespace and block IO are provoked so the
//! container views have series.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::loop_device::{wait_quiet, LoopDevice};
use common::netns::Netns;
use common::{bpf_available, Agent, TestContainer};

/// Names upstream's dashboards query that our agent does not export, and why
/// (docs/migrating-from-upstream.md repeats this list).
const NOT_EXPORTED: &[(&str, &str)] = &[
    (
        "huatuo_bamai_xfs_",
        "upstream does not implement its XFS collector either (only a parser)",
    ),
    (
        "huatuo_bamai_go_",
        "Go runtime series; the agent is not written in Go",
    ),
    (
        "huatuo_bamai_cpu_stat_container_exter_wait_rate",
        "Didi-kernel cpu.stat field, removed upstream",
    ),
    (
        "huatuo_bamai_cpu_stat_container_inner_wait_rate",
        "Didi-kernel cpu.stat field, removed upstream",
    ),
    (
        "huatuo_bamai_cpu_stat_container_throttle_wait_rate",
        "Didi-kernel cpu.stat field, removed upstream",
    ),
    (
        "huatuo_bamai_memory_others_container_",
        "Didi-kernel memcg files",
    ),
    (
        "huatuo_bamai_memory_vmstat_container_pgsteal_cswapd",
        "Didi-kernel memory.stat key",
    ),
    (
        "huatuo_bamai_memory_vmstat_container_pgsteal_globaldirect",
        "Didi-kernel memory.stat key",
    ),
    (
        "huatuo_bamai_memory_vmstat_container_pgsteal_globalkswapd",
        "Didi-kernel memory.stat key",
    ),
    (
        "huatuo_bamai_iolatency_blkdisk_freeze",
        "counts blk_mq_freeze_queue, which has no tracepoint (kprobe only)",
    ),
    (
        "huatuo_bamai_sockstat_container_TCP_mem_bytes",
        "upstream exports no sockstat mem for containers either: protocol memory is host-wide",
    ),
    (
        "huatuo_bamai_sockstat_container_UDP_mem_bytes",
        "upstream exports no sockstat mem for containers either: protocol memory is host-wide",
    ),
];

/// Keys cgroup v1's memory.stat does not have (v2's has them): absent where memory is v1.
const V2_ONLY_MEMORY_STAT: &[&str] = &[
    "huatuo_bamai_memory_vmstat_container_pgsteal_direct",
    "huatuo_bamai_memory_vmstat_container_pgsteal_kswapd",
];

fn memory_is_cgroup_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.stat").exists()
}

fn not_exported(name: &str) -> Option<&'static str> {
    if memory_is_cgroup_v1() && V2_ONLY_MEMORY_STAT.contains(&name) {
        return Some("cgroup v1 memory.stat has no pgsteal_* keys");
    }
    NOT_EXPORTED
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// Every metric name of one dashboard fixture.
fn dashboard_metrics(dashboard: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upstream/dashboards")
        .join(format!("{dashboard}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let queries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    queries
        .iter()
        .flat_map(|q| q["metrics"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

/// Metric names with at least one sample in an exposition.
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// A container as the agent discovers it, with its own network namespace (a veth whose inner
/// end is `eth0`, so network families have a non-loopback device) and block IO on a loop device.
struct BusyContainer {
    container: TestContainer,
    _netns: Netns,
    device: LoopDevice,
}

impl BusyContainer {
    fn start() -> BusyContainer {
        // Unique per call: both tests of this file run in one process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let netns = Netns::create(&format!("dash{n}"));
        let host_end = format!("hd{}x{n}", std::process::id());
        common::run(
            "ip",
            &[
                "link",
                "add",
                &host_end,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &netns.name,
            ],
        );
        common::run("ip", &["link", "set", &host_end, "up"]);
        netns.run("ip", &["addr", "add", "10.254.77.2/24", "dev", "eth0"]);
        netns.run("ip", &["link", "set", "eth0", "up"]);
        let mut container = TestContainer::create().expect("create test cgroup");
        container.spawn(Command::new("ip").args(["netns", "exec", &netns.name, "sleep", "300"]));
        BusyContainer {
            container,
            _netns: netns,
            device: LoopDevice::create(16),
        }
    }

    /// Direct writes from inside the container (once the agent watches its block cgroup).
    fn write_blocks(&mut self) {
        let of = format!("of={}", self.device.path);
        let pid = self.container.spawn(Command::new("dd").args([
            "if=/dev/zero",
            of.as_str(),
            "bs=4k",
            "count=2000",
            "oflag=direct",
        ]));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}/stat")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z "))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_quiet(&self.device);
    }
}

#[test]
fn upstream_prometheus_dashboards_find_every_metric() {
    if !bpf_available("upstream_prometheus_dashboards_find_every_metric") {
        return;
    }
    let mut probes = huatuo_bamai::registry::probe_names();
    probes.retain(|p| *p != "dropwatch" && *p != "tcp_retransmit");
    let extra =
        "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";
    let agent = Agent::start_with(&probes, extra);
    let mut busy = BusyContainer::start();
    // Discovery, then two collections of every probe.
    std::thread::sleep(Duration::from_millis(2500));
    let mut metrics = agent.metrics();
    for _ in 0..20 {
        if metrics.contains(&format!("container_host=\"{}\"", &busy.container.id[..12])) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        metrics = agent.metrics();
    }
    busy.write_blocks();
    std::thread::sleep(Duration::from_millis(1200));
    let metrics = agent.metrics();
    let have = exported(&metrics);

    let mut missing = Vec::new();
    let mut listed_but_exported = Vec::new();
    for dashboard in ["metrics-host", "metrics-container", "metrics-disk-io"] {
        for name in dashboard_metrics(dashboard) {
            match (have.contains(&name), not_exported(&name)) {
                (false, None) => missing.push(format!("{dashboard}: {name}")),
                (true, Some(_)) => listed_but_exported.push(name),
                _ => {}
            }
        }
    }
    assert!(
        missing.is_empty(),
        "dashboard metrics we do not export:\n{}\n\nlog:\n{}",
        missing.join("\n"),
        agent.log()
    );
    assert!(
        listed_but_exported.is_empty(),
        "NOT_EXPORTED lists names we do export: {listed_but_exported:?}"
    );
}

/// Queries of our dashboards that may return nothing on a healthy test run, and why.
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    (
        "huatuo_bamai_event_sink_dropped_total",
        "appears at a sink's first lost document",
    ),
    (
        "huatuo_bamai_oom_container_total",
        "a container's OOM series appears at its first OOM kill",
    ),
];

/// Our Grafana dashboards (deploy/grafana/dashboards, generated by scripts/gen-dashboards.py):
/// the files are what the generator writes, Grafana's own schema models (PyPI
/// grafana-foundation-sdk, through scripts/check-dashboards.py) decode every panel and query,
/// and every panel query, run by a real Prometheus scraping a real agent with every probe, a
/// container and the Elasticsearch sink on, returns series, except the justified `MAY_BE_EMPTY`.
#[test]
fn our_dashboards_decode_and_every_query_returns_data() {
    if !bpf_available("our_dashboards_decode_and_every_query_returns_data")
        || !common::prometheus::installed("our_dashboards_decode_and_every_query_returns_data")
    {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let python = |args: &[&str]| {
        let out = Command::new("python3")
            .args(args)
            .current_dir(root)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "python3 {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    python(&["scripts/gen-dashboards.py", "--check"]);
    let boards: Vec<String> = std::fs::read_dir(Path::new(root).join("deploy/grafana/dashboards"))
        .expect("deploy/grafana/dashboards")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    let mut args = vec!["scripts/check-dashboards.py"];
    args.extend(boards.iter().map(String::as_str));
    let queries: Vec<serde_json::Value> = python(&args)
        .lines()
        .map(|l| serde_json::from_str(l).expect("query line"))
        .collect();
    assert!(
        queries.len() >= 60,
        "only {} queries decoded",
        queries.len()
    );

    let mut probes = huatuo_bamai::registry::probe_names();
    probes.retain(|p| *p != "tcp_retransmit");
    let closed = common::free_port();
    let agent = Agent::start_with(
        &probes,
        &format!(
            "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n\
             [events.elasticsearch]\nenabled = true\naddresses = [\"http://127.0.0.1:{closed}\"]\n\
             [sampler]\nenabled = true\nbudget_ratio = 0.5\ninterval_ms = 1000\n"
        ),
    );
    let mut busy = BusyContainer::start();
    let prom = common::prometheus::Prometheus::start(agent.port, "huatuo-bamai", None);
    prom.wait_for_series(
        &format!(
            "huatuo_bamai_cpu_util_container_total{{container_host=\"{}\"}}",
            &busy.container.id[..12]
        ),
        Duration::from_secs(60),
    );
    busy.write_blocks();
    // Enough scrapes for rate() over the window substituted for $__rate_interval.
    std::thread::sleep(Duration::from_secs(6));

    let mut empty = Vec::new();
    for q in &queries {
        let expr = q["expr"]
            .as_str()
            .expect("expr")
            .replace("$__rate_interval", "5s")
            .replace("$host", ".*")
            .replace("$region", ".*")
            .replace("$container", ".*");
        let reply = prom.query(&expr);
        assert_eq!(
            reply["status"], "success",
            "{}: {expr}: {reply}",
            q["panel"]
        );
        let has_data = reply["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        let excused = MAY_BE_EMPTY.iter().any(|(name, _)| expr.contains(name));
        if !has_data && !excused {
            empty.push(format!("{} / {}: {expr}", q["dashboard"], q["panel"]));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}\n\nagent log:\n{}",
        empty.join("\n"),
        agent.log()
    );
}
