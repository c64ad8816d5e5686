//! Root tests of the event probes against the real kernel: an OOM kill in a 32 MiB container
//! and a task held in D state on a frozen ext4 become exactly one document each, with the right
//! task, container and fields (the hung task's document lists every blocked task, the frozen
//! writers among them, with their kernel stacks); memcg reclaim in a 32 MiB container (threshold 0) becomes
//! memory_reclaim documents naming the task and container, and count in the agent's /metrics. Documents are read from an
//! in-process instance of the probe (same kernel hook) whose event bus the test subscribes to;
//! counters are read from a real agent's /metrics.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use huatuo_bamai::core::Probe;
use huatuo_bamai::events::EventDocument;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::{hungtask, memory_reclaim, oom};

use common::{bpf_available, run, Agent, TestContainer};

/// The tests change host-wide state (hung task timeout, memory pressure): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const DISCOVERY: &str =
    "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";

fn counter(set: &MetricSet, name: &str) -> f64 {
    set.families
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
        .unwrap_or(0.0)
}

fn wait_for_metric(
    agent: &Agent,
    name: &str,
    labels: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = common::sample(&agent.metrics(), name, labels);
        if let Some(value) = value.filter(|v| ok(*v)) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {value:?}:\n{}",
            agent.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_oom_kill_in_a_container_is_one_document_naming_the_victim() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("an_oom_kill_in_a_container_is_one_document_naming_the_victim") {
        return;
    }
    let agent = Agent::start_with(&["oom"], DISCOVERY);
    let mut container = TestContainer::create().expect("create test cgroup");
    let limit = 32u64 << 20;
    let limited = container.dirs.iter().any(|dir| {
        std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).is_ok()
            || std::fs::write(dir.join("memory.max"), limit.to_string()).is_ok()
    });
    assert!(limited, "no memory controller in {:?}", container.dirs);
    for dir in &container.dirs {
        // No swap to escape to (cgroup v2; the v1 hosts here have no swap).
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    }
    let name = container.id[..12].to_string();
    let labels = [("container_name", name.as_str())];
    let before = wait_for_metric(&agent, "huatuo_bamai_oom_container_total", &labels, |_| {
        true
    });
    let host_before = wait_for_metric(&agent, "huatuo_bamai_oom_host_total", &[], |_| true);

    let ctx = common::host_probe_context();
    let mut probe = oom::OomProbe::start(&oom::OomConfig::default(), &ctx).expect("start oom");
    // 256 MiB of touched anonymous memory in a 32 MiB memcg: the OOM killer kills it. The sleep
    // lets the test move the shell into the container before it execs python3.
    let pid = container.spawn(Command::new("sh").args([
        "-c",
        "sleep 0.3; exec python3 -c 'b = bytearray(256 << 20)'",
    ]));
    let victim_pid = |d: &EventDocument| d.tracer_data["victim"]["pid"].as_u64();
    let (documents, _) = common::collect_until(&mut probe, &ctx, Duration::from_secs(10), |docs| {
        docs.iter().any(|d| victim_pid(d) == Some(u64::from(pid)))
    });
    // Anything more for this process would show up within a few more ticks.
    let (more, _) = common::collect_until(&mut probe, &ctx, Duration::from_millis(600), |_| false);
    let mine: Vec<&EventDocument> = documents
        .iter()
        .chain(more.iter())
        .filter(|d| victim_pid(d) == Some(u64::from(pid)))
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one oom document for pid {pid}: {documents:#?}"
    );
    let document = mine[0];
    let data = &document.tracer_data;
    assert_eq!(document.tracer_name, "oom");
    common::upstream::assert_upstream_shape(document);
    assert_eq!(document.time, document.tracer_time);
    for side in ["victim", "trigger"] {
        let css = data[side]["memory_cgroup_css_addr"]
            .as_str()
            .unwrap_or_default();
        assert!(
            css.starts_with("0xffff") && css.len() == 18,
            "{side}'s memcg css address: {data:#}"
        );
    }
    // Victim and trigger are one task in one memcg.
    assert_eq!(
        data["victim"]["memory_cgroup_css_addr"],
        data["trigger"]["memory_cgroup_css_addr"]
    );
    assert_eq!(document.container_id, container.id, "{document:#?}");
    assert_eq!(document.cgroup_id, container.expected_cgroup_id());
    assert_eq!(data["victim"]["comm"], "python3", "{data:#}");
    assert_eq!(data["victim"]["container_id"], container.id.as_str());
    assert_eq!(
        data["trigger"]["pid"], pid,
        "the allocating task invoked the OOM killer"
    );
    // The memory cgroup id read in the kernel is the container's memory directory.
    let memory_dir = container
        .dirs
        .iter()
        .find(|d| d.join("memory.stat").exists())
        .expect("a memory cgroup directory");
    assert_eq!(
        data["victim"]["memory_cgroup_id"],
        std::fs::metadata(memory_dir).unwrap().ino(),
        "{data:#}"
    );
    let memcg = &data["victim"]["cgroup"];
    assert!(
        memcg["path"].as_str().unwrap().ends_with(&container.id),
        "{memcg:#}"
    );
    assert_eq!(memcg["max"], limit, "{memcg:#}");
    assert!(memcg["current"].is_u64(), "{memcg:#}");
    assert!(
        memcg["stat"].as_object().is_some_and(|s| !s.is_empty()),
        "{memcg:#}"
    );
    assert!(
        memcg["events"]["oom_kill"].as_u64() >= Some(1),
        "the memcg counted the kill: {memcg:#}"
    );
    let meminfo = &data["memory_snapshot"]["host_meminfo"];
    assert!(meminfo["MemTotal"].as_u64() > Some(0), "{data:#}");
    assert!(meminfo["MemAvailable"].is_u64(), "{data:#}");

    // The agent counted it for the container, not for the host.
    let after = wait_for_metric(&agent, "huatuo_bamai_oom_container_total", &labels, |v| {
        v > before
    });
    assert_eq!(after, before + 1.0);
    // Labelled with the latest victim's comm, as upstream.
    let victim_labels = [
        ("container_name", name.as_str()),
        ("latest_victim_comm", "python3"),
    ];
    assert_eq!(
        common::sample(
            &agent.metrics(),
            "huatuo_bamai_oom_container_total",
            &victim_labels
        ),
        Some(after)
    );
    let host_after = common::sample(&agent.metrics(), "huatuo_bamai_oom_host_total", &[]);
    assert_eq!(host_after, Some(host_before));
    container.remove();
}

/// `hung_task_timeout_secs` set for the test and restored on drop (also on panic).
struct HungTaskTimeout {
    original: String,
}

const TIMEOUT_SYSCTL: &str = "/proc/sys/kernel/hung_task_timeout_secs";

impl HungTaskTimeout {
    fn set(secs: u64) -> Self {
        let original = std::fs::read_to_string(TIMEOUT_SYSCTL).expect("read hung task timeout");
        std::fs::write(TIMEOUT_SYSCTL, secs.to_string()).expect("set hung task timeout");
        Self { original }
    }
}

impl Drop for HungTaskTimeout {
    fn drop(&mut self) {
        let _ = std::fs::write(TIMEOUT_SYSCTL, self.original.trim());
    }
}

/// An ext4 file system on a loop device, mounted in a temp dir and frozen; on drop (also on
/// panic) it is thawed, the writers blocked on it are reaped, and it is unmounted and detached.
struct FrozenExt4 {
    mountpoint: tempfile::TempDir,
    device: common::loop_device::LoopDevice,
    writers: Vec<Child>,
}

impl FrozenExt4 {
    fn create() -> Self {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(32 << 20).unwrap();
        let image_path = image.path().to_str().unwrap();
        run("mkfs.ext4", &["-q", "-F", image_path]);
        let device = common::loop_device::LoopDevice::over(image);
        let mountpoint = tempfile::tempdir().unwrap();
        let fs = FrozenExt4 {
            mountpoint,
            device,
            writers: Vec::new(),
        };
        run("mount", &[&fs.device.path, fs.path().to_str().unwrap()]);
        run("fsfreeze", &["-f", fs.path().to_str().unwrap()]);
        fs
    }

    fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    /// Starts a writer into the frozen file system (it blocks in D state); returns its pid.
    fn start_writer(&mut self) -> u32 {
        let script = format!("echo x > {}/f; sync", self.path().display());
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let pid = child.id();
        self.writers.push(child);
        pid
    }
}

impl Drop for FrozenExt4 {
    fn drop(&mut self) {
        let path = self.path().to_string_lossy().to_string();
        let _ = Command::new("fsfreeze").args(["-u", &path]).status();
        for writer in &mut self.writers {
            let _ = writer.wait();
        }
        // The loop device is detached after this, when the field drops.
        let _ = Command::new("umount").arg(&path).status();
    }
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn a_task_hung_in_d_state_is_one_document_with_its_stack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("a_task_hung_in_d_state_is_one_document_with_its_stack") {
        return;
    }
    // With hung_task_panic set, a 2 s timeout would panic the machine.
    let panic_on_hang = std::fs::read_to_string("/proc/sys/kernel/hung_task_panic")
        .map(|v| v.trim() != "0")
        .unwrap_or(false);
    if panic_on_hang || !Path::new(TIMEOUT_SYSCTL).exists() {
        eprintln!("SKIP: kernel.hung_task_panic is set or there is no hung task detector");
        return;
    }
    let agent = Agent::start_with(&["hungtask"], "");
    let before = wait_for_metric(&agent, "huatuo_bamai_hungtask_total", &[], |_| true);
    let ctx = common::host_probe_context();
    let mut probe = hungtask::HungtaskProbe::start(&hungtask::HungtaskConfig::default(), &ctx)
        .expect("start hungtask");

    let _timeout = HungTaskTimeout::set(2);
    let mut fs = FrozenExt4::create();
    let pid = fs.start_writer();
    // A second writer blocked on the same freeze: listed among the blocked tasks whichever of
    // the two khungtaskd reports first.
    let other = fs.start_writer();
    let writers = [u64::from(pid), u64::from(other)];
    let mine = |d: &EventDocument| {
        d.tracer_data["pid"]
            .as_u64()
            .is_some_and(|p| writers.contains(&p))
    };
    let started = Instant::now();
    let (documents, _) = common::collect_until(&mut probe, &ctx, Duration::from_secs(10), |docs| {
        docs.iter().any(mine)
    });
    let reported_after = started.elapsed();
    assert_eq!(state_of(pid), Some('D'), "the writer is blocked in D state");
    assert_eq!(
        state_of(other),
        Some('D'),
        "the writer is blocked in D state"
    );
    // khungtaskd reports them again every 2 s while they stay hung: counted, backed off (one
    // document per backoff period for the whole node, as upstream).
    let (more, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_millis(2600), |_| false);
    let all: Vec<&EventDocument> = documents
        .iter()
        .chain(more.iter())
        .filter(|d| mine(d))
        .collect();
    assert_eq!(
        all.len(),
        1,
        "one hungtask document for pids {writers:?} (reported after {reported_after:?}): {documents:#?}"
    );
    let document = all[0];
    let data = &document.tracer_data;
    assert_eq!(document.tracer_name, "hungtask");
    common::upstream::assert_upstream_shape(document);
    assert_eq!(data["tid"], data["pid"], "{data:#}");
    // Upstream's sysrq-w text, built from the same per-task stacks.
    let text = data["blocked_processes_stack"].as_str().unwrap_or_default();
    for writer in &writers {
        assert!(
            text.contains(&format!(
                "state:D pid:{writer} tgid:{writer}\nCall Trace:\n "
            )),
            "writer {writer} in blocked_processes_stack: {data:#}"
        );
    }
    assert_eq!(data["cpus_stack"], "", "no sysrq-l dump: {data:#}");
    assert_eq!(data["comm"], "sh", "{data:#}");
    assert_eq!(data["hung_task_timeout_secs"], 2, "{data:#}");
    let stack = data["stack"].as_str().unwrap_or_default();
    assert!(
        stack.lines().count() >= 3 && !stack.contains("[<"),
        "the hung task's kernel stack: {data:#}"
    );
    assert!(
        document.container_id.is_empty(),
        "a host task: {document:#?}"
    );
    // Every blocked task with its stack: both writers, each blocked on the frozen file system.
    let blocked = data["blocked_tasks"].as_array().expect("blocked_tasks");
    for writer in writers {
        let task = blocked
            .iter()
            .find(|t| t["tid"].as_u64() == Some(writer))
            .unwrap_or_else(|| panic!("writer {writer} among the blocked tasks: {data:#}"));
        assert_eq!(task["pid"].as_u64(), Some(writer), "{task:#}");
        assert_eq!(task["comm"], "sh", "{task:#}");
        let stack = task["stack"].as_str().unwrap_or_default();
        assert!(
            stack.lines().count() >= 3 && !stack.contains("[<"),
            "the blocked writer's kernel stack: {task:#}"
        );
        // Held by the freeze: waiting for the superblock's write rwsem.
        assert!(
            stack.contains("percpu") || stack.contains("sb_start_write") || stack.contains("write"),
            "blocked on the frozen file system: {task:#}"
        );
    }
    for task in blocked {
        assert!(
            task["stack"].as_str().is_some_and(|s| !s.is_empty())
                || task["stack_error"].is_string(),
            "a stack or the reason there is none: {task:#}"
        );
    }
    assert!(
        data["blocked_tasks_total"].as_u64() >= Some(blocked.len() as u64),
        "{data:#}"
    );
    assert!(
        counter(&set, "huatuo_bamai_hungtask_total") >= 2.0,
        "repeated reports still count"
    );
    // The agent counted it too.
    wait_for_metric(&agent, "huatuo_bamai_hungtask_total", &[], |v| v > before);
    drop(fs);
    assert_eq!(state_of(pid), None, "the writer finished after the thaw");
}

#[test]
fn memcg_reclaim_in_a_container_is_a_memory_reclaim_document_naming_the_task() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("memcg_reclaim_in_a_container_is_a_memory_reclaim_document_naming_the_task") {
        return;
    }
    let mut container = TestContainer::create().expect("create test cgroup");
    let limited = container.dirs.iter().any(|dir| {
        std::fs::write(dir.join("memory.limit_in_bytes"), "33554432").is_ok()
            || std::fs::write(dir.join("memory.max"), "33554432").is_ok()
    });
    assert!(limited, "no memory controller in {:?}", container.dirs);
    let ctx = common::host_probe_context();
    let settings = memory_reclaim::MemoryReclaimConfig {
        event_threshold_ms: 0,
        ..Default::default()
    };
    let mut probe =
        memory_reclaim::MemoryReclaimProbe::start(&settings, &ctx).expect("start memory_reclaim");
    // 128 MiB of page cache written from inside a 32 MiB memcg forces memcg reclaim in dd's
    // context. The sleep lets the test move the shell into the container first.
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("fill");
    let script = format!(
        "sleep 0.3; dd if=/dev/zero of={} bs=1M count=128 2>/dev/null; sync",
        file.display()
    );
    container.spawn(Command::new("sh").args(["-c", &script]));
    let container_id = container.id.clone();
    let is_mine = |d: &EventDocument| {
        d.tracer_name == "memory_reclaim"
            && d.tracer_data["comm"] == "dd"
            && d.container_id == container_id
    };
    let (documents, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_secs(10), |docs| {
            docs.iter().any(is_mine)
        });
    container.kill_processes();
    let document = documents.iter().find(|d| is_mine(d)).unwrap_or_else(|| {
        panic!(
            "no memory_reclaim document for dd in {}: {documents:#?}",
            container.id
        )
    });
    let data = &document.tracer_data;
    common::upstream::assert_upstream_shape(document);
    assert_eq!(document.cgroup_id, container.expected_cgroup_id());
    assert_eq!(data["kind"], "memcg", "{data:#}");
    assert!(data["reclaim_duration_ns"].as_u64() > Some(0), "{data:#}");
    assert!(data["pid"].as_u64() > Some(0), "{data:#}");
    assert!(data["tid"].as_u64() > Some(0), "{data:#}");
    assert!(
        counter(&set, "huatuo_bamai_memory_reclaim_events_total") >= 1.0,
        "events counted"
    );
    container.remove();
}
