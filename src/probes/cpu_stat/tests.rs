use std::path::{Path, PathBuf};

use super::*;
use crate::exposition::MetricSet;
use crate::probes::testutil::{
    assert_exact, assert_lines, collect_text, context, context_at, copy_fixture, expected, render,
};

const V1_GUARANTEED: &str = "kubepods/pod11111111-2222-3333-4444-555555555555/c0ffeebbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const V1_BESTEFFORT: &str = "kubepods/besteffort/pod66666666-7777-8888-9999-000000000000/be57efeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const V2_DOCKER: &str =
    "system.slice/docker-d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope";

const C0FFEE: &str = r#"{container_host="c0ffeebbbbbb",container_name="c0ffeebbbbbb",container_type="normal",container_level="guaranteed",container_hostnamespace=""}"#;

fn v1_cpu(root: &Path, rel: &str) -> PathBuf {
    root.join("sys/fs/cgroup/cpu,cpuacct").join(rel)
}

fn replace_line(path: &Path, key: &str, line: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let out: String = text
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some(key) {
                format!("{line}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(path, out).unwrap();
}

#[test]
fn cgroup_v1_fixture_exact_lines() {
    let mut probe = CpuStatProbe::new(context("cgroup-v1"));
    assert_exact(&collect_text(&mut probe), &expected("cpu_stat-v1.txt"));
}

#[test]
fn cgroup_v2_fixture_exact_lines() {
    let mut probe = CpuStatProbe::new(context("cgroup-v2"));
    assert_exact(&collect_text(&mut probe), &expected("cpu_stat-v2.txt"));
}

#[test]
fn parses_v1_v2_and_schedstats_formats() {
    // Captured from a throttled cgroup v1 on this host (kernel 6.18, no schedstats).
    let v1 = "nr_periods 32\nnr_throttled 29\nthrottled_time 991662043\nnr_bursts 1\nburst_time 20000000\n";
    assert_eq!(
        parse_cpu_stat(v1),
        Ok(CpuStat {
            nr_throttled: Some(29),
            throttled_ns: Some(991_662_043),
            nr_bursts: Some(1),
            burst_ns: Some(20_000_000),
            wait_sum_ns: None,
            usage_ns: None,
        })
    );
    let v2 = "usage_usec 1569191\nuser_usec 1560000\nsystem_usec 0\nnice_usec 0\nnr_periods 32\n\
              nr_throttled 29\nthrottled_usec 991662\nnr_bursts 1\nburst_usec 20000\n";
    let stat = parse_cpu_stat(v2).unwrap();
    assert_eq!(stat.throttled_ns, Some(991_662_000));
    assert_eq!(stat.burst_ns, Some(20_000_000));
    assert_eq!(stat.usage_ns, Some(1_569_191_000));
    // Kernels before 5.14 have no burst fields: those gauges are left out.
    let old =
        parse_cpu_stat("nr_periods 1\nnr_throttled 0\nthrottled_time 0\nwait_sum 5\n").unwrap();
    assert_eq!(
        (old.nr_bursts, old.burst_ns, old.wait_sum_ns),
        (None, None, Some(5))
    );
}

#[test]
fn wait_percent_from_deltas() {
    assert_eq!(wait_percent((13, 109), (10, 100)), Some(25.0));
    assert_eq!(wait_percent((10, 100), (10, 100)), Some(0.0));
    assert_eq!(wait_percent((5, 100), (10, 100)), None);
    assert_eq!(wait_percent((10, 50), (10, 100)), None);
}

#[test]
fn wait_sum_percent_on_the_second_tick_where_the_kernel_has_wait_sum() {
    let dir = copy_fixture("cgroup-v1");
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    let first = collect_text(&mut probe);
    assert!(!first.contains("wait_sum_percent"), "{first}");
    // +3 s waiting, +9 s running: 3 / (3 + 9) = 25 %.
    let cpu = v1_cpu(dir.path(), V1_GUARANTEED);
    replace_line(&cpu.join("cpu.stat"), "wait_sum", "wait_sum 12876543210");
    std::fs::write(cpu.join("cpuacct.usage"), "1231254321987\n").unwrap();
    let second = collect_text(&mut probe);
    assert_lines(
        &second,
        &format!("huatuo_bamai_cpu_stat_container_wait_sum_percent{C0FFEE} 25\n"),
    );
    // Only the container whose cpu.stat has wait_sum gets the series.
    assert_eq!(second.matches("wait_sum_percent{").count(), 1, "{second}");
}

#[test]
fn wait_sum_counter_reset_skips_one_interval() {
    let dir = copy_fixture("cgroup-v1");
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    collect_text(&mut probe);
    let cpu = v1_cpu(dir.path(), V1_GUARANTEED);
    replace_line(&cpu.join("cpu.stat"), "wait_sum", "wait_sum 1");
    assert!(!collect_text(&mut probe).contains("wait_sum_percent{"));
    assert!(collect_text(&mut probe).contains(&format!("wait_sum_percent{C0FFEE} 0")));
}

#[test]
fn v2_cpu_stat_has_no_wait_sum() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    collect_text(&mut probe);
    let text = collect_text(&mut probe);
    assert!(!text.contains("wait_sum_percent"), "{text}");
    assert!(probe.waits.is_empty());
}

#[test]
fn malformed_and_truncated_files_skip_only_that_container() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::write(
        v1_cpu(dir.path(), V1_BESTEFFORT).join("cpu.stat"),
        "nr_periods 32\nnr_thr",
    )
    .unwrap();
    let v2 = copy_fixture("cgroup-v2");
    std::fs::write(
        v2.path()
            .join("sys/fs/cgroup")
            .join(V2_DOCKER)
            .join("cpu.stat"),
        "\u{0}\u{ff}garbage here\n",
    )
    .unwrap();
    for (root, gone, kept) in [
        (dir.path(), "be57efeeeeee", "c0ffeebbbbbb"),
        (v2.path(), "d0cce7aaaaaa", "c210cccccccc"),
    ] {
        let mut probe = CpuStatProbe::new(context_at(root));
        let text = collect_text(&mut probe);
        assert!(!text.contains(gone), "{text}");
        assert!(text.contains(kept), "{text}");
    }
}

#[test]
fn wait_share_needs_cpuacct_usage_but_throttling_does_not() {
    let dir = copy_fixture("cgroup-v1");
    let cpu = v1_cpu(dir.path(), V1_GUARANTEED);
    std::fs::write(cpu.join("cpuacct.usage"), "oops\n").unwrap();
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    collect_text(&mut probe);
    let text = collect_text(&mut probe);
    assert_lines(
        &text,
        &format!("huatuo_bamai_cpu_stat_container_nr_throttled{C0FFEE} 1203\n"),
    );
    assert!(!text.contains("wait_sum_percent"), "{text}");
}

#[test]
fn every_container_failing_is_an_error_and_gone_ones_are_quiet() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    let root = dir.path().join("sys/fs/cgroup");
    for path in walk_files(&root, "cpu.stat") {
        if path.parent() != Some(root.as_path()) {
            std::fs::write(path, "garbage\n").unwrap();
        }
    }
    let mut set = MetricSet::default();
    let err = probe.collect(&mut set).unwrap_err();
    assert!(err.to_string().contains("cpu.stat"), "{err}");

    // Containers removed after discovery are skipped without a warning.
    let dir = copy_fixture("cgroup-v2");
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    for top in ["system.slice", "kubepods.slice", "machine.slice"] {
        std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup").join(top)).unwrap();
    }
    let mut set = MetricSet::default();
    probe.collect(&mut set).unwrap();
    assert_eq!(render(set), "");
    assert!(probe.warned.is_empty());
}

fn walk_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk_files(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

#[test]
fn state_of_gone_containers_is_dropped() {
    let dir = copy_fixture("cgroup-v1");
    let mut probe = CpuStatProbe::new(context_at(dir.path()));
    collect_text(&mut probe);
    assert_eq!(probe.waits.len(), 1);
    let pod = "kubepods/pod11111111-2222-3333-4444-555555555555";
    for controller in ["cpu,cpuacct", "memory", "blkio", "pids", "cpuset"] {
        let _ =
            std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup").join(controller).join(pod));
    }
    probe.ctx = context_at(dir.path());
    collect_text(&mut probe);
    assert!(probe.waits.is_empty());
}

/// The probe's parser reads the real root `cpu.stat` the way a direct read does.
#[test]
fn real_root_cpu_stat_matches_a_direct_read() {
    let layout = crate::containers::CgroupLayout::detect(Path::new("/sys"));
    let path = layout.dir("cpu", "/").join("cpu.stat");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("no {} on this host; skipped", path.display());
        return;
    };
    let stat = parse_cpu_stat(&text).unwrap();
    let direct = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse::<u64>().ok())
    };
    assert_eq!(stat.nr_throttled, direct("nr_throttled"));
    assert_eq!(stat.nr_bursts, direct("nr_bursts"));
    assert_eq!(
        stat.throttled_ns,
        direct("throttled_time").or(direct("throttled_usec").map(|us| us * 1000))
    );
}
