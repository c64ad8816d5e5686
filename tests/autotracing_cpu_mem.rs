//! AutoTracing triggers cpuidle, cpusys and memburst against the real kernel, as root, with the
//! thresholds lowered: a busy loop in a test cgroup with a CPU quota is a cpuidle document whose
//! flame graph (that container only) names the loop's function; a loop of raw read() syscalls
//! on /dev/zero is a cpusys document with sys% above the threshold and kernel frames; a process
//! allocating quickly in a test memcg is named first by memburst. The stored documents' flame
//! graphs are served as SVG at /v1/events/<id>/flamegraph.svg. Without the profile probe a spike
//! is still a document, saying why it has no flame graph.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{bpf_available, build_c, Agent, TestContainer};
use huatuo_bamai::core::Probe;
use huatuo_bamai::probes::memburst;
use serde_json::Value;

/// The tests load the CPUs and memory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const CONTAINERS: &str =
    "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";

const BUSY_C: &str = r#"
#include <stdint.h>
volatile uint64_t sink;
__attribute__((noinline)) void huatuo_cpuidle_spin(void)
{
	for (uint64_t i = 0; i < 50000000ULL; i++)
		sink += i;
}
int main(void)
{
	for (;;)
		huatuo_cpuidle_spin();
}
"#;

/// read(2) of /dev/zero by a raw syscall, so the user leaf is the named function itself (a libc
/// wrapper built without frame pointers would hide it); the kernel zero-fills 64 KiB each time.
const SYS_READ_C: &str = r#"
#include <fcntl.h>
static char buf[1 << 16];
__attribute__((noinline)) long huatuo_sys_read(int fd)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(0), "D"(fd), "S"(buf), "d"(sizeof(buf))
			 : "rcx", "r11", "memory");
	return ret;
}
int main(void)
{
	int fd = open("/dev/zero", O_RDONLY);
	for (;;)
		huatuo_sys_read(fd);
}
"#;

/// Touches `argv[1]` MiB of anonymous memory within a second, then holds it.
const MEMHOG_C: &str = r#"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	size_t mib = strtoul(argv[1], 0, 10);
	for (size_t i = 0; i < mib / 64; i++) {
		char *p = malloc(64 << 20);
		if (!p)
			return 1;
		memset(p, 1, 64 << 20);
	}
	for (;;)
		pause();
}
"#;

/// A high CPU weight for a test container and its `docker` parent (restored on drop): the
/// host's other work sits in autogroups and the container's loops must get the CPUs they ask for.
struct CpuBoost {
    restore: Vec<(std::path::PathBuf, String)>,
}

impl CpuBoost {
    fn of(container: &TestContainer) -> CpuBoost {
        let mut restore = Vec::new();
        for dir in &container.dirs {
            for (file, value) in [("cpu.shares", "100000"), ("cpu.weight", "5000")] {
                let _ = std::fs::write(dir.join(file), value);
                let Some(parent) = dir.parent() else {
                    continue;
                };
                let path = parent.join(file);
                if restore.iter().any(|(p, _)| *p == path) {
                    continue;
                }
                if let Ok(old) = std::fs::read_to_string(&path) {
                    if std::fs::write(&path, value).is_ok() {
                        restore.push((path, old.trim().to_string()));
                    }
                }
            }
        }
        CpuBoost { restore }
    }
}

impl Drop for CpuBoost {
    fn drop(&mut self) {
        for (path, old) in &self.restore {
            let _ = std::fs::write(path, old);
        }
    }
}

/// The stored documents of `tracer_name` (oldest first).
fn documents(agent: &Agent, tracer_name: &str) -> Vec<Value> {
    let (status, body) = agent
        .get(&format!("/v1/events?tracer_name={tracer_name}"))
        .expect("GET /v1/events");
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("JSON envelope");
    reply["data"].as_array().cloned().unwrap_or_default()
}

/// Polls the store until a `tracer_name` document satisfies `wanted`.
fn wait_document(
    agent: &Agent,
    tracer_name: &str,
    timeout: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(d) = documents(agent, tracer_name).into_iter().find(&wanted) {
            return Some(d);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn labels(data: &Value) -> Vec<String> {
    data["flamedata"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .filter_map(|f| f["label"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The document's flame graph SVG, which must name `function`.
fn check_svg(agent: &Agent, document: &Value, function: &str) {
    let id = document["tracer_id"].as_str().expect("tracer_id");
    let (status, svg) = agent
        .get(&format!("/v1/events/{id}/flamegraph.svg"))
        .expect("GET flamegraph.svg");
    assert_eq!(status, 200, "{svg}");
    assert!(svg.starts_with("<?xml"), "{}", &svg[..svg.len().min(200)]);
    assert!(
        svg.contains(function),
        "SVG of {id} does not name {function}"
    );
}

#[test]
fn a_busy_loop_over_its_quota_is_a_cpuidle_flame_graph_of_that_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("a_busy_loop_over_its_quota_is_a_cpuidle_flame_graph_of_that_container") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = build_c(dir.path(), "cpuidle_busy", BUSY_C);
    let mut container = TestContainer::create().expect("create test cgroup");
    // Half a core: the loop alone uses 100 % of the container's capacity.
    for d in &container.dirs {
        let _ = std::fs::write(d.join("cpu.cfs_quota_us"), "50000");
        let _ = std::fs::write(d.join("cpu.max"), "50000 100000");
    }
    let _boost = CpuBoost::of(&container);
    let config = format!(
        "{CONTAINERS}[probes.cpuidle]\ninterval_ms = 1000\nuser_percent = 30.0\n\
         user_percent_delta = 20.0\ntotal_percent = 30.0\ntotal_percent_delta = 20.0\n\
         capture_secs = 3\n"
    );
    let agent = Agent::start_with(&["profile", "cpuidle"], &config);
    // A quiet sample of the (empty) container first, so the loop is a rise.
    std::thread::sleep(Duration::from_millis(2500));
    let pid = container.spawn(&mut Command::new(&busy));
    let id = container.id.clone();
    let document = wait_document(&agent, "cpuidle", Duration::from_secs(30), |d| {
        d["container_id"] == id.as_str()
    });
    container.kill_processes();
    let document = document
        .unwrap_or_else(|| panic!("no cpuidle document for {id} (pid {pid}):\n{}", agent.log()));
    assert_eq!(document["tracer_type"], "autotracing");
    // `time` is the spike's; the document was written after the 3 s capture.
    let time = |key: &str, parse: fn(&str) -> Result<std::time::SystemTime, String>| {
        parse(document[key].as_str().unwrap_or_default()).expect(key)
    };
    let spike = time("time", huatuo_bamai::events::time::parse_document_time);
    let written = time("uploaded_time", huatuo_bamai::events::time::parse_rfc3339);
    assert!(
        written.duration_since(spike).unwrap_or_default() >= Duration::from_secs(3),
        "time {} uploaded {}",
        document["time"],
        document["uploaded_time"]
    );
    let data = &document["tracer_data"];
    assert!(data["capture_error"].is_null(), "{data:#}");
    assert!(data["total_percent"].as_f64().unwrap() > 30.0, "{data:#}");
    assert!(
        data["total_percent_delta"].as_f64().unwrap() > 20.0,
        "{data:#}"
    );
    assert_eq!(data["total_percent_threshold"], 30.0);
    assert_eq!(data["cpu_cores"], 0.5, "{data:#}");
    assert!(
        labels(data).iter().any(|l| l == "huatuo_cpuidle_spin"),
        "flamedata does not name the loop: {data:#}"
    );
    // That container only: every stack is the loop's process.
    let folded = data["folded_stacks"].as_str().expect("folded_stacks");
    assert!(!folded.is_empty());
    for line in folded.lines() {
        assert!(
            line.starts_with("cpuidle_busy;"),
            "a stack from outside: {line}"
        );
    }
    check_svg(&agent, &document, "huatuo_cpuidle_spin");

    let (status, body) = agent
        .get("/v1/events/no-such-event/flamegraph.svg")
        .expect("GET");
    assert_eq!(status, 404);
    assert!(
        body.contains("no event with tracer_id no-such-event"),
        "{body}"
    );
}

#[test]
fn a_loop_of_read_syscalls_is_a_cpusys_flame_graph_with_kernel_frames() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("a_loop_of_read_syscalls_is_a_cpusys_flame_graph_with_kernel_frames") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = build_c(dir.path(), "sysread", SYS_READ_C);
    let agent = Agent::start_with(
        &["profile", "cpusys"],
        "[probes.cpusys]\ninterval_ms = 1000\nsystem_percent = 30.0\n\
         system_percent_delta = 20.0\ncapture_secs = 3\ncooldown_secs = 0\n",
    );
    let named = |d: &Value| {
        d["tracer_data"]["folded_stacks"]
            .as_str()
            .is_some_and(|f| f.contains("huatuo_sys_read"))
    };
    // Two quiet samples, then one reader per CPU for longer than a sample plus the capture (whose
    // programs take seconds to load on a loaded host). The capture is symbolised before its
    // document is written, which takes a while on a host busy with large binaries; a spike
    // another load caused first is retried.
    let mut document = None;
    for _ in 0..3 {
        let written = documents(&agent, "cpusys").len();
        std::thread::sleep(Duration::from_millis(2500));
        let mut loops = TestContainer::create().expect("create test cgroup");
        let boost = CpuBoost::of(&loops);
        for _ in 0..2 {
            loops.spawn(&mut Command::new(&reader));
        }
        std::thread::sleep(Duration::from_secs(15));
        drop(loops);
        drop(boost);
        let deadline = Instant::now() + Duration::from_secs(120);
        while document.is_none() && Instant::now() < deadline {
            let all = documents(&agent, "cpusys");
            document = all.iter().find(|d| named(d)).cloned();
            if all.len() > written {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if document.is_some() {
            break;
        }
    }
    let document = document.unwrap_or_else(|| {
        panic!(
            "no cpusys document naming the reader: {:#?}\n{}",
            documents(&agent, "cpusys"),
            agent.log()
        )
    });
    assert_eq!(document["tracer_type"], "autotracing");
    assert!(
        document["container_id"].as_str().unwrap_or("").is_empty(),
        "a host document: {document:#}"
    );
    let data = &document["tracer_data"];
    assert!(data["capture_error"].is_null(), "{data:#}");
    assert!(data["system_percent"].as_f64().unwrap() > 30.0, "{data:#}");
    assert!(
        data["system_percent_delta"].as_f64().unwrap() > 20.0,
        "{data:#}"
    );
    assert_eq!(data["system_percent_threshold"], 30.0);
    assert_eq!(data["system_percent_delta_threshold"], 20.0);
    let labels = labels(data);
    assert!(
        labels.iter().any(|l| l == "sysread"),
        "comm missing: {labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.ends_with("_[k]") && l.contains("read")),
        "no kernel read frame: {labels:?}"
    );
    check_svg(&agent, &document, "huatuo_sys_read");

    // The cooldown is a live setting.
    let out = agent.ctl(&["set", "probes.cpusys.cooldown_secs", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("restarted cpusys"),
        "{text}"
    );
    agent.wait_state("cpusys", "running", Duration::from_secs(5));
}

fn anon_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let info = huatuo_bamai::autotracing::memburst::parse_meminfo(&text).expect("parse");
    info.anon_kib / 1024
}

#[test]
fn a_process_allocating_fast_in_a_memcg_is_named_first_by_memburst() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("a_process_allocating_fast_in_a_memcg_is_named_first_by_memburst") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hog = build_c(dir.path(), "memhog", MEMHOG_C);
    let mut container = TestContainer::create().expect("create test cgroup");
    let ctx = common::host_probe_context();
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total_mib = huatuo_bamai::autotracing::memburst::parse_meminfo(&text)
        .expect("parse")
        .mem_total_kib
        / 1024;
    // The hog adds at least as much as the host holds (2 GiB or more), and the lowered rule
    // (+50 % over the window, anon at "now + 3/4 of the hog" of MemTotal) only fires once it has
    // touched most of it. Page faults in a VM fill ~250 MiB/s: the window spans the allocation.
    let before = anon_mib();
    let hog_mib = before.max(2048).div_ceil(64) * 64;
    assert!(
        before + hog_mib < total_mib / 2,
        "anon memory already {before} MiB of {total_mib}"
    );
    let share = (before + hog_mib * 3 / 4) as f64 * 100.0 / total_mib as f64;
    let settings = memburst::MemburstConfig {
        window: 300,
        burst_ratio: 0.5,
        anon_percent_of_total: share,
        cooldown_secs: 0,
        ..Default::default()
    };
    let mut probe = memburst::MemburstProbe::start(&settings, &ctx).expect("start memburst");
    let (quiet, _) = common::collect_until(&mut probe, &ctx, Duration::from_millis(500), |_| false);
    assert!(quiet.is_empty(), "fired before the burst: {quiet:#?}");
    let pid = container.spawn(Command::new(&hog).arg(hog_mib.to_string()));
    // Another process's burst may fire first (the host is shared): the document wanted is the
    // one the hog tops.
    let tops = move |d: &huatuo_bamai::events::EventDocument| {
        d.tracer_name == "memburst" && d.tracer_data["top_memory_usage"][0]["pid"] == pid
    };
    let (found, _) = common::collect_until(&mut probe, &ctx, Duration::from_secs(60), |docs| {
        docs.iter().any(tops)
    });
    let others: Vec<_> = found.iter().filter(|d| !tops(d)).cloned().collect();
    let document = found.into_iter().find(tops);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    container.kill_processes();
    let document = document.unwrap_or_else(|| {
        panic!("no memburst document topped by the hog; hog statm {rss}; others: {others:#?}")
    });
    assert_eq!(
        document.tracer_type,
        huatuo_bamai::events::TracerType::Autotracing
    );
    let data = &document.tracer_data;
    let top = &data["top_memory_usage"][0];
    assert_eq!(top["pid"], pid, "{data:#}");
    assert_eq!(top["process_name"], "memhog", "{data:#}");
    assert_eq!(top["container_id"], container.id.as_str(), "{data:#}");
    assert!(top["memory_size"].as_u64().unwrap() >= 1 << 30, "{data:#}");
    let (now, oldest) = (
        data["anon_bytes"].as_u64().unwrap(),
        data["oldest_anon_bytes"].as_u64().unwrap(),
    );
    assert!(now * 2 >= oldest * 3, "not a +50 % burst: {data:#}");
}

#[test]
fn without_the_profile_probe_a_cpuidle_spike_is_a_document_saying_why() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("without_the_profile_probe_a_cpuidle_spike_is_a_document_saying_why") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = build_c(dir.path(), "cpuidle_busy", BUSY_C);
    let mut container = TestContainer::create().expect("create test cgroup");
    for d in &container.dirs {
        let _ = std::fs::write(d.join("cpu.cfs_quota_us"), "50000");
        let _ = std::fs::write(d.join("cpu.max"), "50000 100000");
    }
    let _boost = CpuBoost::of(&container);
    let config = format!(
        "{CONTAINERS}[probes.cpuidle]\ninterval_ms = 1000\ntotal_percent = 30.0\n\
         total_percent_delta = 20.0\n"
    );
    // The profile probe stays off.
    let agent = Agent::start_with(&["cpuidle"], &config);
    std::thread::sleep(Duration::from_millis(2500));
    container.spawn(&mut Command::new(&busy));
    let id = container.id.clone();
    let document = wait_document(&agent, "cpuidle", Duration::from_secs(20), |d| {
        d["container_id"] == id.as_str()
    });
    container.kill_processes();
    let document = document.unwrap_or_else(|| panic!("no cpuidle document:\n{}", agent.log()));
    let data = &document["tracer_data"];
    let why = data["capture_error"].as_str().unwrap_or_default();
    assert!(why.contains("probes.profile"), "{data:#}");
    assert_eq!(data["flamedata"], serde_json::json!([]));
    assert!(data["total_percent"].as_f64().unwrap() > 30.0, "{data:#}");
    let failures = common::sample(
        &agent.metrics(),
        "huatuo_bamai_cpuidle_capture_failures_total",
        &[],
    );
    assert!(failures >= Some(1.0), "{failures:?}");
    let tracer_id = document["tracer_id"].as_str().expect("tracer_id");
    let (status, body) = agent
        .get(&format!("/v1/events/{tracer_id}/flamegraph.svg"))
        .expect("GET");
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("carries no flame data") && body.contains("probes.profile"),
        "{body}"
    );
}
