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
        let netns = Netns::create("dash");
        let host_end = format!("hd{}", std::process::id());
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
