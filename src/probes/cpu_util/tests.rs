use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cpu_files::*;
use super::*;
use crate::exposition::MetricSet;
use crate::probes::testutil::{
    assert_exact, assert_lines, context, context_at, copy_fixture, expected, real_proc_context,
    render, samples,
};

const V1_DOCKER: &str = "docker/d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const V1_GUARANTEED: &str = "kubepods/pod11111111-2222-3333-4444-555555555555/c0ffeebbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const V1_BESTEFFORT: &str = "kubepods/besteffort/pod66666666-7777-8888-9999-000000000000/be57efeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const V2_DOCKER: &str =
    "system.slice/docker-d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope";
const V2_GUARANTEED: &str = "kubepods.slice/kubepods-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-c0ffeebbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.scope";
const V2_BURSTABLE: &str = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod66666666_7777_8888_9999_000000000000.slice/crio-c210cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.scope";
const V2_PODMAN: &str =
    "machine.slice/libpod-b0d3a9dddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.scope";

fn v1_cpu(root: &Path, rel: &str) -> PathBuf {
    root.join("sys/fs/cgroup/cpu,cpuacct").join(rel)
}

fn v2_cg(root: &Path, rel: &str) -> PathBuf {
    root.join("sys/fs/cgroup").join(rel)
}

/// Adds `deltas` to the named keys of a `key value` file.
fn bump(path: &Path, deltas: &[(&str, u64)]) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap();
        let value: u64 = value.trim().parse().unwrap();
        let delta = deltas
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, d)| *d);
        out.push_str(&format!("{key} {}\n", value + delta));
    }
    std::fs::write(path, out).unwrap();
}

/// Adds `delta` to a one-number file.
fn bump_value(path: &Path, delta: u64) {
    let value: u64 = std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(path, format!("{}\n", value + delta)).unwrap();
}

fn collect(probe: &mut CpuUtilProbe, now: Instant) -> String {
    let mut set = MetricSet::default();
    probe.collect_at(&mut set, now).expect("collect");
    render(set)
}

/// The counter advance both expected files describe (10 s between the two collections).
fn advance_v1(root: &Path) {
    let cpu = |rel| v1_cpu(root, rel);
    bump(&cpu("cpuacct.stat"), &[("user", 800), ("system", 200)]);
    bump_value(&cpu("cpuacct.usage"), 10_500_000_000);
    bump(
        &cpu(V1_DOCKER).join("cpuacct.stat"),
        &[("user", 500), ("system", 100)],
    );
    bump_value(&cpu(V1_DOCKER).join("cpuacct.usage"), 6_200_000_000);
    bump(
        &cpu(V1_GUARANTEED).join("cpuacct.stat"),
        &[("user", 1200), ("system", 300)],
    );
    bump_value(&cpu(V1_GUARANTEED).join("cpuacct.usage"), 15_100_000_000);
    bump(&cpu(V1_BESTEFFORT).join("cpuacct.stat"), &[("user", 450)]);
    bump_value(&cpu(V1_BESTEFFORT).join("cpuacct.usage"), 4_600_000_000);
}

fn advance_v2(root: &Path) {
    let stat = |rel| v2_cg(root, rel).join("cpu.stat");
    let usec = |usage, user, system| {
        [
            ("usage_usec", usage),
            ("user_usec", user),
            ("system_usec", system),
        ]
    };
    bump(&stat(""), &usec(10_000_000, 8_000_000, 2_000_000));
    bump(&stat(V2_DOCKER), &usec(5_000_000, 4_000_000, 1_000_000));
    bump(
        &stat(V2_GUARANTEED),
        &usec(15_000_000, 12_000_000, 3_000_000),
    );
    bump(&stat(V2_BURSTABLE), &usec(4_750_000, 4_500_000, 250_000));
    bump(&stat(V2_PODMAN), &usec(1_000_000, 800_000, 200_000));
}

/// First collection: cores only; second, 10 s later, after `advance`: utilisation too.
fn two_collections(layout: &str, advance: fn(&Path)) -> (String, String) {
    let dir = copy_fixture(layout);
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let t0 = Instant::now();
    let first = collect(&mut probe, t0);
    advance(dir.path());
    let second = collect(&mut probe, t0 + Duration::from_secs(10));
    (first, second)
}

#[test]
fn cgroup_v1_fixture_exact_lines() {
    let (first, second) = two_collections("cgroup-v1", advance_v1);
    assert_exact(&second, &expected("cpu_util-v1.txt"));
    // The first tick has no interval yet: only the cores.
    let cores: Vec<&str> = samples(&second)
        .into_iter()
        .filter(|l| l.starts_with("huatuo_bamai_cpu_util_container_cores{"))
        .collect();
    assert_eq!(samples(&first), cores);
}

#[test]
fn cgroup_v2_fixture_exact_lines() {
    let (first, second) = two_collections("cgroup-v2", advance_v2);
    assert_exact(&second, &expected("cpu_util-v2.txt"));
    let cores: Vec<&str> = samples(&second)
        .into_iter()
        .filter(|l| l.starts_with("huatuo_bamai_cpu_util_container_cores{"))
        .collect();
    assert_eq!(samples(&first), cores);
}

#[test]
fn v2_root_without_cpu_stat_falls_back_to_proc_stat() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::remove_file(v2_cg(dir.path(), "cpu.stat")).unwrap();
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let t0 = Instant::now();
    collect(&mut probe, t0);
    // 10 s on 2 CPUs = 2000 ticks: user+nice 600 (30 %), system+irq+softirq 300 (15 %);
    // idle, iowait and steal are not CPU time of the host's tasks.
    let proc_stat = dir.path().join("proc/stat");
    let text = std::fs::read_to_string(&proc_stat).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let cpu: Vec<u64> = lines[0]
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let add = [500, 100, 200, 1000, 50, 40, 60, 7, 0, 0];
    let bumped: Vec<String> = cpu
        .iter()
        .zip(add)
        .map(|(v, d)| (v + d).to_string())
        .collect();
    lines[0] = format!("cpu  {}", bumped.join(" "));
    std::fs::write(&proc_stat, lines.join("\n") + "\n").unwrap();
    let text = collect(&mut probe, t0 + Duration::from_secs(10));
    assert_lines(
        &text,
        "huatuo_bamai_cpu_util_usr 30\nhuatuo_bamai_cpu_util_sys 15\nhuatuo_bamai_cpu_util_total 45\n",
    );
}

#[test]
fn switching_host_source_skips_one_interval() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let t0 = Instant::now();
    collect(&mut probe, t0);
    std::fs::remove_file(v2_cg(dir.path(), "cpu.stat")).unwrap();
    let text = collect(&mut probe, t0 + Duration::from_secs(10));
    assert!(!text.contains("huatuo_bamai_cpu_util_usr "), "{text}");
    let text = collect(&mut probe, t0 + Duration::from_secs(20));
    assert_lines(&text, "huatuo_bamai_cpu_util_total 0\n");
}

#[test]
fn cores_follow_quota_cpuset_and_host() {
    assert_eq!(container_cores(None, None, Some(8)), Some(8.0));
    assert_eq!(container_cores(None, Some(2), Some(8)), Some(2.0));
    assert_eq!(container_cores(Some(0.5), Some(1), Some(8)), Some(0.5));
    assert_eq!(container_cores(Some(4.0), Some(2), Some(8)), Some(2.0));
    assert_eq!(container_cores(Some(16.0), None, Some(8)), Some(8.0));
    assert_eq!(container_cores(Some(1.5), None, None), Some(1.5));
    assert_eq!(container_cores(None, None, None), None);
}

#[test]
fn v2_cpuset_effective_bounds_the_cores() {
    let dir = copy_fixture("cgroup-v2");
    let scope = v2_cg(dir.path(), V2_GUARANTEED);
    std::fs::write(
        scope.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    std::fs::write(scope.join("cpuset.cpus.effective"), "1\n").unwrap();
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let text = collect(&mut probe, Instant::now());
    assert_lines(
        &text,
        r#"huatuo_bamai_cpu_util_container_cores{container_host="c0ffeebbbbbb",container_name="c0ffeebbbbbb",container_type="normal",container_level="guaranteed",container_hostnamespace=""} 1"#,
    );
}

#[test]
fn quota_and_cpu_list_parsers() {
    assert_eq!(parse_cfs_quota("-1\n", "100000\n"), Ok(None));
    assert_eq!(parse_cfs_quota("50000\n", "100000\n"), Ok(Some(0.5)));
    assert!(parse_cfs_quota("0", "100000").is_err());
    assert!(parse_cfs_quota("50000", "0").is_err());
    assert!(parse_cfs_quota("abc", "100000").is_err());
    assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
    assert_eq!(parse_cpu_max("200000 100000\n"), Ok(Some(2.0)));
    assert!(parse_cpu_max("200000").is_err());
    assert!(parse_cpu_max("x 100000").is_err());
    assert_eq!(parse_cpu_list_count("0-1\n"), Ok(Some(2)));
    assert_eq!(parse_cpu_list_count("0-3,8,10-11"), Ok(Some(7)));
    assert_eq!(parse_cpu_list_count("\n"), Ok(None));
    assert!(parse_cpu_list_count("3-1").is_err());
    assert!(parse_cpu_list_count("0-").is_err());
}

#[test]
fn cpuacct_stat_names_the_missing_key() {
    assert_eq!(
        parse_cpuacct("system 4\n", "10", 100).unwrap_err(),
        "cpuacct.stat: missing user"
    );
}

#[test]
fn proc_stat_cpu_line_and_cpu_count() {
    // Real /proc/stat head of this host (USER_HZ 100).
    let text = "cpu  145178 0 32221 305740 2267 0 637 182 0 0\n\
                cpu0 64003 0 13507 164723 508 0 269 90 0 0\n\
                cpu1 81175 0 18714 141017 1758 0 368 92 0 0\n\
                intr 2249300 0 0\nctxt 8981926\n";
    let (usage, cpus) = parse_proc_stat(text, 100).unwrap();
    assert_eq!(cpus, 2);
    assert_eq!(usage.user_ns, 1_451_780_000_000);
    assert_eq!(usage.system_ns, 328_580_000_000);
    assert_eq!(usage.total_ns, 1_780_360_000_000);
    assert!(parse_proc_stat("cpu  1 2 3\n", 100).is_err());
    assert!(parse_proc_stat("intr 1\n", 100).is_err());
}

#[test]
fn malformed_container_files_skip_only_that_container() {
    let dir = copy_fixture("cgroup-v1");
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let t0 = Instant::now();
    collect(&mut probe, t0);
    advance_v1(dir.path());
    // Garbage quota: the docker container is skipped entirely.
    std::fs::write(
        v1_cpu(dir.path(), V1_DOCKER).join("cpu.cfs_quota_us"),
        "garbage\n",
    )
    .unwrap();
    // Truncated cpuacct.stat: the besteffort container keeps its cores but has no utilisation.
    std::fs::write(
        v1_cpu(dir.path(), V1_BESTEFFORT).join("cpuacct.stat"),
        "user 606\nsys",
    )
    .unwrap();
    let text = collect(&mut probe, t0 + Duration::from_secs(10));
    assert!(!text.contains("d0cce7aaaaaa"), "{text}");
    assert!(text.contains(
        r#"huatuo_bamai_cpu_util_container_cores{container_host="be57efeeeeee",container_name="be57efeeeeee",container_type="normal",container_level="besteffort",container_hostnamespace=""} 0.5"#
    ));
    assert!(
        !text.contains(r#"huatuo_bamai_cpu_util_container_total{container_host="be57efeeeeee""#)
    );
    assert_lines(
        &text,
        r#"
        huatuo_bamai_cpu_util_total 52.5
        huatuo_bamai_cpu_util_container_total{container_host="c0ffeebbbbbb",container_name="c0ffeebbbbbb",container_type="normal",container_level="guaranteed",container_hostnamespace=""} 75.5
        "#,
    );
}

#[test]
fn garbage_host_files_fall_back_and_containers_still_export() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::write(v1_cpu(dir.path(), "cpuacct.usage"), "\u{0}\u{1}garbage").unwrap();
    std::fs::write(dir.path().join("proc/stat"), "cpu  1 2\n").unwrap();
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let mut set = MetricSet::default();
    probe
        .collect_at(&mut set, Instant::now())
        .expect("containers still collected");
    let text = render(set);
    assert_eq!(samples(&text).len(), 3, "{text}");
}

#[test]
fn nothing_collectable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let mut set = MetricSet::default();
    let err = probe.collect_at(&mut set, Instant::now()).unwrap_err();
    assert!(err.to_string().contains("proc/stat"), "{err}");
}

#[test]
fn counter_reset_skips_one_interval() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let t0 = Instant::now();
    collect(&mut probe, t0);
    std::fs::write(
        v2_cg(dir.path(), V2_DOCKER).join("cpu.stat"),
        "usage_usec 10\nuser_usec 5\nsystem_usec 5\n",
    )
    .unwrap();
    let text = collect(&mut probe, t0 + Duration::from_secs(10));
    assert!(
        !text.contains(r#"huatuo_bamai_cpu_util_container_total{container_host="d0cce7aaaaaa""#),
        "{text}"
    );
    assert!(text.contains(r#"huatuo_bamai_cpu_util_container_total{container_host="c0ffeebbbbbb""#));
}

#[test]
fn state_of_gone_containers_is_dropped() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    let t0 = Instant::now();
    collect(&mut probe, t0);
    assert_eq!(probe.containers.len(), 4);
    std::fs::remove_dir_all(v2_cg(dir.path(), "machine.slice")).unwrap();
    probe.ctx = context_at(dir.path());
    let text = collect(&mut probe, t0 + Duration::from_secs(10));
    assert_eq!(probe.containers.len(), 3);
    assert!(!text.contains("b0d3a9"));
}

#[test]
fn container_removed_after_discovery_is_skipped_quietly() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuUtilProbe::new(context_at(dir.path()));
    // Discovery still lists it, but its cgroup is gone.
    std::fs::remove_dir_all(v2_cg(dir.path(), "machine.slice")).unwrap();
    let text = collect(&mut probe, Instant::now());
    assert!(!text.contains("b0d3a9"));
    assert!(probe.warned.is_empty());
}

#[test]
fn unchanged_fixture_gives_the_expected_cores() {
    let mut probe = CpuUtilProbe::new(context("cgroup-v1"));
    let text = collect(&mut probe, Instant::now());
    assert_lines(
        &text,
        r#"
        huatuo_bamai_cpu_util_container_cores{container_host="d0cce7aaaaaa",container_name="d0cce7aaaaaa",container_type="normal",container_level="unknown",container_hostnamespace=""} 1
        "#,
    );
}

/// Host counters read by the probe from the real /proc and /sys equal the files read directly.
#[test]
fn host_values_match_the_real_files() {
    let ctx = real_proc_context();
    let mut probe = CpuUtilProbe::new(ctx.clone());
    let proc_stat = std::fs::read_to_string("/proc/stat").unwrap();
    let direct_cpus = proc_stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes()[3].is_ascii_digit())
        .count() as u32;
    let cpus = probe
        .online_cpus(&mut ReadOnce::new("/proc/stat".into()))
        .unwrap();
    assert_eq!(cpus, direct_cpus);

    // CPU time moves on between the two reads: allow 2 s of it.
    let tolerance = 2_000_000_000 * u64::from(cpus);
    let close = |a: u64, b: u64, what: &str| {
        assert!(a.abs_diff(b) <= tolerance, "{what}: probe {a} vs file {b}")
    };
    match probe.cgroup_usage("/") {
        Ok(usage) if ctx.cgroup.is_v2() => {
            let text =
                std::fs::read_to_string(ctx.cgroup.dir("cpu", "/").join("cpu.stat")).unwrap();
            let value = |key: &str| -> u64 {
                let line = text.lines().find(|l| l.starts_with(key)).unwrap();
                line.split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    * 1000
            };
            close(usage.total_ns, value("usage_usec"), "usage_usec");
            close(usage.user_ns, value("user_usec"), "user_usec");
        }
        Ok(usage) => {
            let dir = ctx.cgroup.dir("cpuacct", "/");
            let total: u64 = std::fs::read_to_string(dir.join("cpuacct.usage"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            close(usage.total_ns, total, "cpuacct.usage");
            let stat = std::fs::read_to_string(dir.join("cpuacct.stat")).unwrap();
            let user: u64 = stat.lines().next().unwrap()[5..].parse().unwrap();
            close(
                usage.user_ns,
                ticks_to_ns(user, user_hz()),
                "cpuacct.stat user",
            );
        }
        Err(_) => {
            let (usage, _) = parse_proc_stat(&proc_stat, user_hz()).unwrap();
            let fields: Vec<u64> = proc_stat.lines().next().unwrap()[4..]
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            close(
                usage.user_ns,
                ticks_to_ns(fields[0] + fields[1], user_hz()),
                "/proc/stat user",
            );
        }
    }

    // Two real collections give a host utilisation within 0..=100 %.
    let mut set = MetricSet::default();
    probe.collect_at(&mut set, Instant::now()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut set = MetricSet::default();
    probe.collect_at(&mut set, Instant::now()).unwrap();
    let total = set
        .families
        .iter()
        .find(|f| f.name == "huatuo_bamai_cpu_util_total")
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
        .expect("host total after two ticks");
    assert!((0.0..=105.0).contains(&total), "{total}");
}
