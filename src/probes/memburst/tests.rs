use super::*;
use crate::probes::testutil::host_only_context;

#[test]
fn proc_files_parse() {
    assert_eq!(parse_statm_resident("1000 250 30 1 0 200 0\n"), Some(250));
    assert_eq!(parse_statm_resident("1000"), None);
    let v1 = "12:pids:/docker/abc\n5:memory:/docker/abc\n0::/system.slice\n";
    assert_eq!(cgroup_path_of(v1, false), Some("/docker/abc"));
    assert_eq!(cgroup_path_of(v1, true), Some("/system.slice"));
    assert_eq!(cgroup_path_of("3:cpu,cpuacct:/x\n", false), None);
    assert!(path_within("/docker/abc", "/docker/abc"));
    assert!(path_within("/kubepods/pod1/abc/sub", "/kubepods/pod1/abc"));
    assert!(!path_within("/docker/abcd", "/docker/abc"));
    assert!(!path_within("/docker/abc", ""));
}

/// A procfs with a meminfo and two processes.
fn write_proc(dir: &std::path::Path, anon_kib: u64) {
    let meminfo = format!("MemTotal: 1000 kB\nActive(anon): {anon_kib} kB\nInactive(anon): 0 kB\n");
    std::fs::write(dir.join("meminfo"), meminfo).expect("meminfo");
    for (pid, comm, pages) in [(10, "small", 2), (20, "hog", 50)] {
        let p = dir.join(pid.to_string());
        std::fs::create_dir_all(&p).expect("pid dir");
        std::fs::write(p.join("statm"), format!("100 {pages} 0 0 0 0 0\n")).expect("statm");
        std::fs::write(p.join("comm"), format!("{comm}\n")).expect("comm");
        std::fs::write(p.join("cgroup"), "0::/\n").expect("cgroup");
    }
}

#[test]
fn a_doubling_to_most_of_memory_lists_the_largest_process_first_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_proc(dir.path(), 300);
    let ctx = host_only_context(dir.path());
    let mut rx = ctx.events.subscribe();
    let settings = MemburstConfig {
        window: 3,
        ..Default::default()
    };
    let mut probe = MemburstProbe::start(&settings, &ctx).expect("start");
    for anon in [300, 500] {
        write_proc(dir.path(), anon);
        probe.collect(&mut MetricSet::default()).expect("collect");
    }
    assert!(rx.try_recv().is_err(), "500 kB is below 70 % of 1000");
    write_proc(dir.path(), 700);
    probe.collect(&mut MetricSet::default()).expect("collect");
    let document = rx.try_recv().expect("a memburst document");
    assert_eq!(document.tracer_name, "memburst");
    assert_eq!(document.tracer_type, TracerType::Autotracing);
    let data = &document.tracer_data;
    assert_eq!(data["anon_bytes"], 700 * 1024);
    assert_eq!(data["oldest_anon_bytes"], 300 * 1024);
    let top = data["top_memory_usage"].as_array().expect("list");
    assert_eq!(top[0]["pid"], 20);
    assert_eq!(top[0]["process_name"], "hog");
    assert_eq!(top[1]["process_name"], "small");
    assert!(top[0]["memory_size"].as_u64() > top[1]["memory_size"].as_u64());
    // The window restarted at the capture: 950 is no doubling of 700.
    write_proc(dir.path(), 950);
    probe.collect(&mut MetricSet::default()).expect("collect");
    assert!(rx.try_recv().is_err(), "fired again right after a capture");
}

#[test]
fn settings_are_checked() {
    for bad in [
        MemburstConfig {
            window: 1,
            ..Default::default()
        },
        MemburstConfig {
            burst_ratio: 0.0,
            ..Default::default()
        },
        MemburstConfig {
            anon_percent_of_total: 101.0,
            ..Default::default()
        },
    ] {
        assert!(validate(&bad).is_err(), "{bad:?}");
    }
    assert!(validate(&MemburstConfig::default()).is_ok());
}
