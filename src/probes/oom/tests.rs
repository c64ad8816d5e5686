use super::snapshot::parse_limit;
use super::*;
use crate::config::Section;
use crate::probes::testutil::{assert_lines, context_at, copy_fixture, render};

const V1_DOCKER: &str = "/docker/d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const V2_DOCKER: &str =
    "/system.slice/docker-d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope";

/// `/proc/meminfo` of the development VM (Linux 6.18), first lines.
const MEMINFO: &str = "MemTotal:       24684084 kB
MemFree:        18697884 kB
MemAvailable:   23769896 kB
Buffers:            6604 kB
Cached:          5119112 kB
SwapCached:            0 kB
Active:          1686260 kB
Inactive:        3596920 kB
Active(anon):       1568 kB
Inactive(anon):   164800 kB
Active(file):    1684692 kB
Inactive(file):  3432120 kB
Unevictable:       14580 kB
Mlocked:           13660 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Slab:             318208 kB
SReclaimable:     201548 kB
SUnreclaim:       116660 kB
CommitLimit:    12342040 kB
Committed_AS:    1427096 kB
HugePages_Total:       0
";

fn task_bytes(out: &mut [u8], cgroup_id: u64, tid: u32, pid: u32, comm: &[u8]) {
    out[0..8].copy_from_slice(&cgroup_id.to_le_bytes());
    out[8..16].copy_from_slice(&(cgroup_id + 1).to_le_bytes());
    out[16..20].copy_from_slice(&tid.to_le_bytes());
    out[20..24].copy_from_slice(&pid.to_le_bytes());
    out[24..24 + comm.len()].copy_from_slice(comm);
    out[40..48].copy_from_slice(&(0xffff_8881_0000_0000 | cgroup_id).to_le_bytes());
}

/// A record laid out as `struct oom_event` of oom.bpf.c.
fn record_bytes() -> Vec<u8> {
    let mut bytes = vec![0u8; OomRecord::SIZE];
    bytes[0..8].copy_from_slice(&55u64.to_le_bytes());
    bytes[8..12].copy_from_slice(&1000u32.to_le_bytes());
    task_bytes(&mut bytes[16..64], 7001, 4243, 4242, b"python3");
    task_bytes(&mut bytes[64..112], 7003, 31, 30, b"kworker/u4:2");
    bytes
}

#[test]
fn records_decode_from_the_bpf_layout() {
    assert_eq!(OomRecord::SIZE, 112);
    let record = OomRecord::decode(&record_bytes()).unwrap();
    assert_eq!(
        record,
        OomRecord {
            boot_ns: 55,
            victim_uid: 1000,
            victim: OomTask {
                cgroup_id: 7001,
                memcg_id: 7002,
                tid: 4243,
                pid: 4242,
                comm: "python3".into(),
                memcg_css: 0xffff_8881_0000_1b59,
            },
            trigger: OomTask {
                cgroup_id: 7003,
                memcg_id: 7004,
                tid: 31,
                pid: 30,
                comm: "kworker/u4:2".into(),
                memcg_css: 0xffff_8881_0000_1b5b,
            },
        }
    );
    assert!(OomRecord::decode(&record_bytes()[..111]).is_none());
}

#[test]
fn limits_read_unlimited_as_none() {
    assert_eq!(parse_limit("max\n"), Ok(None));
    assert_eq!(parse_limit("33554432\n"), Ok(Some(33_554_432)));
    // v1 without a limit prints PAGE_COUNTER_MAX in bytes.
    assert_eq!(parse_limit("9223372036854771712\n"), Ok(None));
    assert!(parse_limit("lots").is_err());
}

#[test]
fn v1_memcg_snapshot_reads_usage_limit_stat_and_oom_control() {
    let tree = copy_fixture("cgroup-v1");
    let dir = tree
        .path()
        .join("sys/fs/cgroup/memory")
        .join(&V1_DOCKER[1..]);
    std::fs::write(dir.join("memory.usage_in_bytes"), "33488896\n").unwrap();
    std::fs::write(dir.join("memory.limit_in_bytes"), "33554432\n").unwrap();
    std::fs::write(
        dir.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    )
    .unwrap();
    let snapshot = memcg_snapshot(&dir, V1_DOCKER);
    assert_eq!(snapshot.path, V1_DOCKER);
    assert_eq!(snapshot.current, Some(33_488_896));
    assert_eq!(snapshot.max, Some(33_554_432));
    assert_eq!(snapshot.stat.get("cache"), Some(&9_338_880));
    assert_eq!(snapshot.events.get("oom_kill"), Some(&1));
    assert_eq!(snapshot.events.get("under_oom"), Some(&0));
    assert_eq!(snapshot.events.get("failcnt"), Some(&0));
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
}

#[test]
fn v2_memcg_snapshot_reads_current_max_stat_and_events() {
    let tree = copy_fixture("cgroup-v2");
    let dir = tree.path().join("sys/fs/cgroup").join(&V2_DOCKER[1..]);
    std::fs::write(dir.join("memory.current"), "1048576\n").unwrap();
    std::fs::write(dir.join("memory.max"), "max\n").unwrap();
    let snapshot = memcg_snapshot(&dir, V2_DOCKER);
    assert_eq!(snapshot.current, Some(1_048_576));
    assert_eq!(snapshot.max, None, "unlimited");
    assert_eq!(snapshot.stat.get("anon"), Some(&27_262_976));
    assert_eq!(snapshot.stat.len(), 59);
    assert_eq!(
        snapshot.events.keys().collect::<Vec<_>>(),
        ["high", "low", "max", "oom", "oom_group_kill", "oom_kill"]
    );
    assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
    let value = serde_json::to_value(&snapshot).unwrap();
    assert!(value.get("max").is_none() && value.get("errors").is_none());
}

#[test]
fn a_memcg_that_is_gone_keeps_what_was_read_and_names_the_rest() {
    let tree = copy_fixture("cgroup-v2");
    let dir = tree.path().join("sys/fs/cgroup").join(&V2_DOCKER[1..]);
    std::fs::write(dir.join("memory.current"), "garbage\n").unwrap();
    let snapshot = memcg_snapshot(&dir, V2_DOCKER);
    assert_eq!(snapshot.current, None);
    assert!(!snapshot.stat.is_empty());
    let errors = snapshot.errors.join("; ");
    assert!(
        errors.contains("memory.current: not a byte count") && errors.contains("memory.max: "),
        "{errors}"
    );
    let gone = memcg_snapshot(&tree.path().join("nowhere"), "/gone");
    // No memory.current: read as v1, five files missing.
    assert_eq!(gone.errors.len(), 5, "{:?}", gone.errors);
}

#[test]
fn host_meminfo_keeps_upstreams_fields_in_bytes() {
    let meminfo = parse_meminfo(MEMINFO);
    assert_eq!(meminfo.get("MemTotal"), Some(&(24_684_084 * 1024)));
    assert_eq!(meminfo.get("MemAvailable"), Some(&(23_769_896 * 1024)));
    assert_eq!(meminfo.get("Active(anon)"), Some(&(1568 * 1024)));
    assert!(!meminfo.contains_key("Active") && !meminfo.contains_key("HugePages_Total"));
    assert_eq!(meminfo.len(), 18);
}

#[test]
fn kills_count_for_the_victims_container_or_the_host() {
    let tree = copy_fixture("cgroup-v1");
    let ctx = context_at(tree.path());
    let containers = ctx.containers.borrow().clone();
    let docker = containers
        .iter()
        .find(|c| c.id.starts_with("d0cce7"))
        .unwrap()
        .clone();
    let mut counters = OomCounters::default();
    counters.count(Some(&docker), "stress");
    counters.count(Some(&docker), "python3");
    counters.count(None, "bash");
    let mut set = MetricSet::default();
    counters.export(&containers, &mut set);
    let text = render(set);
    assert_lines(
        &text,
        "huatuo_bamai_oom_host_total 1\n\
         huatuo_bamai_oom_container_total{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\",latest_victim_comm=\"python3\"} 2\n",
    );
    // Every container has a series (0 until its first kill), so increase() sees the first one.
    let series = text
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_oom_container_total{"))
        .count();
    assert_eq!(series, containers.len(), "{text}");
    assert!(text.contains("# TYPE huatuo_bamai_oom_container_total counter"));

    // A container that is gone is forgotten.
    let mut set = MetricSet::default();
    counters.export(&ContainerSet::default(), &mut set);
    assert!(counters.containers.is_empty());
    assert_lines(&render(set), "huatuo_bamai_oom_host_total 1\n");
}

#[test]
fn victims_are_found_by_cgroup_id_or_by_their_memory_cgroup() {
    use std::os::unix::fs::MetadataExt;
    // cgroup v1 without a v2 mount: a task's default-hierarchy cgroup is the root (id 1), and
    // containers are keyed by their cpu directory inode.
    let tree = copy_fixture("cgroup-v1");
    let ctx = context_at(tree.path());
    let containers = ctx.containers.borrow().clone();
    let docker = containers
        .iter()
        .find(|c| c.id.starts_with("d0cce7"))
        .unwrap();
    let memcg = std::fs::metadata(ctx.cgroup.dir("memory", &docker.cgroup_path))
        .unwrap()
        .ino();
    let task = |cgroup_id, memcg_id| OomTask {
        cgroup_id,
        memcg_id,
        tid: 1,
        pid: 1,
        comm: "python3".into(),
        memcg_css: 0,
    };
    let found = |t: &OomTask| container_of(&containers, t).map(|c| c.id.clone());
    assert_eq!(found(&task(docker.cgroup_id, 0)), Some(docker.id.clone()));
    assert_eq!(found(&task(1, memcg)), Some(docker.id.clone()));
    assert_eq!(found(&task(1, 0)), None);
    assert_eq!(found(&task(1, u64::MAX)), None);
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture() {
    let tree = copy_fixture("cgroup-v2");
    let dir = tree.path().join("sys/fs/cgroup").join(&V2_DOCKER[1..]);
    std::fs::write(dir.join("memory.current"), "1048576\n").unwrap();
    std::fs::write(dir.join("memory.max"), "33554432\n").unwrap();
    let actor = |pid, comm: &str| OomActor {
        memory_cgroup_css_addr: "0xffff888104a6c000".into(),
        pid,
        tid: pid,
        comm: comm.into(),
        cgroup_id: 7001,
        memory_cgroup_id: 7002,
        container_id: "d0cce7".into(),
        container_hostname: "web".into(),
        cgroup: Some(memcg_snapshot(&dir, V2_DOCKER)),
    };
    let (trigger, victim) = (actor(1, "python3"), actor(2, "stress"));
    let data = OomData {
        columns: OomDashboardColumns::of(&trigger, &victim),
        trigger,
        victim,
        victim_uid: 0,
        memory_snapshot: MemorySnapshot {
            host_meminfo: parse_meminfo(MEMINFO),
            errors: Vec::new(),
        },
    };
    let ctx = context_at(tree.path());
    let containers = ctx.containers.borrow().clone();
    let docker = containers
        .iter()
        .find(|c| c.id.starts_with("d0cce7"))
        .unwrap();
    let document = EventDocument::new(
        "h",
        "r",
        NAME,
        Some(docker.as_ref()),
        7001,
        serde_json::to_value(&data).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/oom.json"
    ))
    .unwrap();
    let optional = crate::events::document::upstream_omitempty(NAME);
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &optional);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
    // The flat columns of upstream's event dashboard repeat trigger / victim.
    let flat = &ours["tracer_data"];
    assert_eq!(
        (
            &flat["victim_pid"],
            &flat["victim_process_name"],
            &flat["trigger_pid"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!("stress"),
            &serde_json::json!(1)
        )
    );
    assert_eq!(flat["victim_container_hostname"], "web");
    // A field renamed on our side is caught.
    let mut renamed = ours.clone();
    let victim = renamed["tracer_data"]["victim"].as_object_mut().unwrap();
    let css = victim.remove("memory_cgroup_css_addr").unwrap();
    victim.insert("css".into(), css);
    assert_eq!(
        crate::events::document::shape_mismatches(&upstream, &renamed, &optional),
        vec!["tracer_data.victim.memory_cgroup_css_addr: missing"]
    );
}

#[test]
fn config_defaults_and_validation() {
    let config = OomConfig::default();
    assert!(config.enabled);
    assert_eq!(config.interval_ms, 200);
    assert!(config.validate().is_ok());
    let fast = OomConfig {
        interval_ms: 99,
        ..OomConfig::default()
    };
    assert!(fast.validate().is_err());
}
