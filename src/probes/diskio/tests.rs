use std::collections::HashSet;

use super::*;
use crate::probes::testutil::{
    assert_lines, collect_text, context, context_at, copy_fixture, expected, real_proc_context,
};

fn probe_with(config: &DiskioConfig, ctx: &ProbeContext) -> DiskioProbe {
    DiskioProbe::start(config, ctx).unwrap()
}

fn write(root: &std::path::Path, rel: &str, text: &str) {
    std::fs::write(root.join("proc").join(rel), text).unwrap();
}

#[test]
fn exports_fixture_devices_v1() {
    let mut probe = probe_with(&DiskioConfig::default(), &context("cgroup-v1"));
    let text = collect_text(&mut probe);
    assert_lines(&text, &expected("diskio-v1.txt"));
    // Default exclusions drop ram* and sr*; loop devices and partitions stay.
    assert!(!text.contains("device=\"ram0\""), "{text}");
    assert!(!text.contains("device=\"sr0\""), "{text}");
    // The first collection has no interval for iowait.
    assert!(!text.contains("disk_iowait_percent"), "{text}");
}

#[test]
fn exports_fixture_devices_v2() {
    let mut probe = probe_with(&DiskioConfig::default(), &context("cgroup-v2"));
    let text = collect_text(&mut probe);
    assert_lines(&text, &expected("diskio-v2.txt"));
}

#[test]
fn iowait_percent_is_the_delta_ratio_between_collections() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = probe_with(&DiskioConfig::default(), &context_at(dir.path()));
    // total = user+nice+system+idle+iowait+irq+softirq+steal; guest columns are ignored.
    write(
        dir.path(),
        "stat",
        "cpu  100 0 100 600 100 50 50 0 7 7\nintr 1\n",
    );
    assert!(!collect_text(&mut probe).contains("iowait"));
    // Δtotal = 2000 - 1000, Δiowait = 400 - 100 → 30 %.
    write(
        dir.path(),
        "stat",
        "cpu  200 0 200 1000 400 100 100 0 9 9\nintr 1\n",
    );
    let text = collect_text(&mut probe);
    assert_lines(
        &text,
        "# TYPE huatuo_bamai_diskio_disk_iowait_percent gauge\n\
         huatuo_bamai_diskio_disk_iowait_percent 30",
    );
    // Counters going backwards (e.g. a replaced fixture): no value for that interval.
    write(dir.path(), "stat", "cpu  10 0 10 10 10 0 0 0 0 0\n");
    assert!(!collect_text(&mut probe).contains("iowait"));
    // ... and the next interval is measured from the reset sample: Δtotal 40, Δiowait 10.
    write(dir.path(), "stat", "cpu  20 0 15 25 20 0 0 0 0 0\n");
    assert_lines(
        &collect_text(&mut probe),
        "huatuo_bamai_diskio_disk_iowait_percent 25",
    );
}

#[test]
fn exclusions_match_exact_names_and_prefixes() {
    let config = DiskioConfig {
        device_excluded: vec!["loop*".into(), "vda1".into()],
        ..DiskioConfig::default()
    };
    let mut probe = probe_with(&config, &context("cgroup-v1"));
    let text = collect_text(&mut probe);
    let devices: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.split("device=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        devices,
        HashSet::from(["vda", "zram0", "ram0", "sr0"]),
        "{text}"
    );
}

#[test]
fn config_rejects_unusable_patterns() {
    for bad in ["*", "", "a*b", "sd a"] {
        let config = DiskioConfig {
            device_excluded: vec![bad.into()],
            ..DiskioConfig::default()
        };
        let err = crate::config::Section::validate(&config)
            .map_err(|e| e.reason)
            .unwrap_err();
        assert!(err.contains("device_excluded"), "{err}");
    }
    crate::config::Section::validate(&DiskioConfig::default())
        .map_err(|e| e.reason)
        .unwrap();
}

#[test]
fn malformed_lines_skip_only_that_device() {
    let dir = copy_fixture("cgroup-v1");
    write(
        dir.path(),
        "diskstats",
        "   8       0 sda 1000 200 50000 3000 2000 400 80000 6000 50 9000 15000\n\
            8       1 sda1 800 100\n\
            8      16 sdb 1 2 x 4 5 6 7 8 9 10 11\n\
         garbage\n",
    );
    let mut probe = probe_with(&DiskioConfig::default(), &context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert_lines(
        &text,
        "huatuo_bamai_diskio_read_requests_total{device=\"sda\"} 1000\n\
         huatuo_bamai_diskio_write_requests_total{device=\"sda\"} 2000\n\
         huatuo_bamai_diskio_read_bytes_total{device=\"sda\"} 25600000\n\
         huatuo_bamai_diskio_written_bytes_total{device=\"sda\"} 40960000\n\
         huatuo_bamai_diskio_read_time_seconds_total{device=\"sda\"} 3\n\
         huatuo_bamai_diskio_write_time_seconds_total{device=\"sda\"} 6\n\
         huatuo_bamai_diskio_io_in_progress{device=\"sda\"} 50\n\
         huatuo_bamai_diskio_io_time_seconds_total{device=\"sda\"} 9\n\
         huatuo_bamai_diskio_io_time_weighted_seconds_total{device=\"sda\"} 15",
    );
    assert!(!text.contains("sda1") && !text.contains("sdb"), "{text}");
}

#[test]
fn garbage_stat_keeps_devices_and_garbage_diskstats_keeps_iowait() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = probe_with(&DiskioConfig::default(), &context_at(dir.path()));
    write(dir.path(), "stat", "cpu  garbage\n");
    let text = collect_text(&mut probe);
    assert!(text.contains("device=\"vda\""), "{text}");

    write(dir.path(), "stat", "cpu  100 0 100 700 100 0 0 0 0 0\n");
    collect_text(&mut probe);
    write(dir.path(), "diskstats", "not a diskstats file\n");
    write(dir.path(), "stat", "cpu  200 0 200 1500 100 0 0 0 0 0\n");
    let text = collect_text(&mut probe);
    assert_eq!(
        text,
        "# HELP huatuo_bamai_diskio_disk_iowait_percent Share of CPU time spent in iowait since the previous collection, in percent (/proc/stat).\n\
         # TYPE huatuo_bamai_diskio_disk_iowait_percent gauge\n\
         huatuo_bamai_diskio_disk_iowait_percent 0\n"
    );
}

#[test]
fn nothing_collectable_is_an_error_naming_the_file() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = probe_with(&DiskioConfig::default(), &context_at(dir.path()));
    std::fs::remove_file(dir.path().join("proc/diskstats")).unwrap();
    let err = probe.collect(&mut MetricSet::default()).unwrap_err();
    assert!(err.to_string().contains("diskstats"), "{err}");
    // Truncated to nothing but garbage: a parse error, still no panic.
    write(dir.path(), "diskstats", "   8       0 sda 1 2\n");
    let err = probe.collect(&mut MetricSet::default()).unwrap_err();
    assert!(err.to_string().contains("malformed"), "{err}");
}

#[test]
fn parses_old_and_new_diskstats_layouts() {
    // Linux < 4.18: 14 fields.
    let old = parse_diskstats_line("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11").unwrap();
    assert_eq!(
        old,
        DiskStats {
            device: "sda".into(),
            reads: 1,
            sectors_read: 3,
            read_ms: 4,
            writes: 5,
            sectors_written: 7,
            write_ms: 8,
            in_progress: 9,
            io_ms: 10,
            weighted_io_ms: 11,
        }
    );
    // Linux 5.5+: 20 fields (discard and flush columns are ignored).
    let new = parse_diskstats_line(
        " 254       0 vda 361676 15192 33067594 560587 38077 58649 43695104 140782 0 41248 705979 18887 60 23016104 4551 1583 58",
    )
    .unwrap();
    assert_eq!(
        (new.reads, new.io_ms, new.weighted_io_ms),
        (361676, 41248, 705979)
    );
    assert_eq!(
        parse_diskstats_line("8 0 sda 1 2 3").unwrap_err(),
        "device sda: 6 fields, at least 14 expected"
    );
    assert_eq!(
        parse_diskstats_line("8 0 sda 1 2 3 4 5 6 7 8 9 -1 11").unwrap_err(),
        "device sda: field 13 `-1` is not a number"
    );
}

#[test]
fn parses_cpu_times_of_old_kernels() {
    // Linux 2.6.11-era: no steal/guest columns.
    assert_eq!(
        parse_cpu_times("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n").unwrap(),
        CpuTimes {
            iowait: 5,
            total: 28
        }
    );
    assert!(parse_cpu_times("cpu  1 2 3 4\n")
        .unwrap_err()
        .contains("iowait"));
    assert!(parse_cpu_times("cpu0 1 2 3 4 5\n").is_err());
}

#[test]
fn host_values_match_real_proc_diskstats() {
    let Ok(before) = std::fs::read_to_string("/proc/diskstats") else {
        eprintln!("no /proc/diskstats here; skipped");
        return;
    };
    let ctx = real_proc_context();
    let config = DiskioConfig {
        device_excluded: vec![],
        ..DiskioConfig::default()
    };
    let mut probe = probe_with(&config, &ctx);
    let text = collect_text(&mut probe);
    let after = std::fs::read_to_string("/proc/diskstats").unwrap();
    let mut compared = 0;
    // Devices whose line did not change between the two direct reads must match exactly.
    for line in before.lines().filter(|l| after.lines().any(|a| a == *l)) {
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(3)
            .map(|f| f.parse().unwrap())
            .collect();
        let device = line.split_whitespace().nth(2).unwrap();
        let series = |name: &str, value: f64| {
            let mut set = MetricSet::default();
            set.counter(name, "")
                .push(vec![("device", device.to_string())], value);
            crate::probes::testutil::render(set)
                .lines()
                .last()
                .unwrap()
                .to_string()
        };
        let want = [
            series("huatuo_bamai_diskio_read_requests_total", fields[0] as f64),
            series(
                "huatuo_bamai_diskio_read_bytes_total",
                fields[2] as f64 * 512.0,
            ),
            series(
                "huatuo_bamai_diskio_write_time_seconds_total",
                fields[7] as f64 / 1000.0,
            ),
            series("huatuo_bamai_diskio_io_in_progress", fields[8] as f64),
            series(
                "huatuo_bamai_diskio_io_time_seconds_total",
                fields[9] as f64 / 1000.0,
            ),
        ];
        assert_lines(&text, &want.join("\n"));
        compared += 1;
    }
    assert!(
        compared > 0 || before.trim().is_empty(),
        "no stable device to compare"
    );
}
