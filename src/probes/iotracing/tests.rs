use super::*;
use crate::config::Section;

fn thresholds() -> Thresholds {
    IotracingConfig::default().thresholds()
}

fn status(util: f64, read_await: f64, write_await: f64) -> DiskStatus {
    DiskStatus {
        io_util: util,
        read_await,
        write_await,
        ..Default::default()
    }
}

/// The first index of `series` at which the trigger fires (two consecutive windows).
fn first_fire(series: &[DiskStatus], nvme: bool) -> Option<(usize, Reason)> {
    series
        .windows(2)
        .enumerate()
        .find_map(|(i, w)| decide(&w[0], &w[1], nvme, &thresholds()).map(|r| (i + 1, r)))
}

#[test]
fn util_above_90_for_two_consecutive_samples_fires_and_one_sample_does_not() {
    let quiet = status(20.0, 1.0, 1.0);
    let busy = status(97.0, 1.0, 1.0);
    assert_eq!(first_fire(&[quiet, busy, quiet, busy, quiet], false), None);
    assert_eq!(
        first_fire(&[quiet, busy, busy, quiet], false),
        Some((2, Reason::IoUtil))
    );
    // Exactly at the threshold is not above it.
    assert_eq!(first_fire(&[status(90.0, 0.0, 0.0); 3], false), None);
}

#[test]
fn await_above_100ms_twice_fires_with_the_side_that_was_slow() {
    let slow_write = status(30.0, 2.0, 150.0);
    assert_eq!(
        first_fire(&[slow_write, slow_write], false),
        Some((1, Reason::WriteAwait))
    );
    let slow_read = status(30.0, 101.0, 0.0);
    assert_eq!(
        first_fire(&[slow_read, slow_read], false),
        Some((1, Reason::ReadAwait))
    );
    // Slow reads then slow writes: neither side was slow twice.
    assert_eq!(first_fire(&[slow_read, slow_write], false), None);
}

#[test]
fn nvme_needs_a_high_rate_with_its_util() {
    let busy = status(99.0, 0.0, 0.0);
    assert_eq!(first_fire(&[busy, busy], true), None);
    let streaming = DiskStatus {
        write_bps: 1600.0 * 1024.0 * 1024.0,
        ..busy
    };
    assert_eq!(
        first_fire(&[streaming, streaming], true),
        Some((1, Reason::WriteBps))
    );
    assert_eq!(Reason::IoUtil.as_str(), "ioutil");
    assert_eq!(
        serde_json::to_value(Reason::WriteBps).unwrap(),
        serde_json::json!("write_bps")
    );
}

fn stats(device: &str, values: [u64; 11]) -> DiskStats {
    let line = format!("7 0 {device} {}", values.map(|v| v.to_string()).join(" "));
    parse_diskstats_line(&line).unwrap()
}

#[test]
fn disk_status_is_iostat_arithmetic_over_the_window() {
    // reads merged sectors ms writes merged sectors ms inflight io_ms weighted
    let a = stats("vdb", [100, 0, 800, 50, 200, 0, 4000, 1000, 0, 1000, 2000]);
    let b = stats(
        "vdb",
        [110, 0, 1800, 70, 300, 0, 6048, 16000, 2, 2900, 6000],
    );
    let s = disk_status(&a, &b, 2.0).unwrap();
    assert_eq!(s.read_iops, 5.0);
    assert_eq!(s.read_bps, 1000.0 * 512.0 / 2.0);
    assert_eq!(s.read_await, 2.0);
    assert_eq!(s.write_iops, 50.0);
    assert_eq!(s.write_bps, 2048.0 * 512.0 / 2.0);
    assert_eq!(s.write_await, 150.0);
    assert_eq!(s.io_util, 95.0);
    assert_eq!(s.queue_size, 2.0);
    // A counter going backwards (device re-registered) gives no window.
    assert_eq!(disk_status(&b, &a, 2.0), None);
    assert_eq!(disk_status(&a, &b, 0.0), None);
}

#[test]
fn cooldown_holds_the_disk_and_the_host_back() {
    let mut cooldown: Cooldown<String> =
        Cooldown::new(Duration::from_secs(300), Duration::from_secs(1800));
    let t0 = Instant::now();
    cooldown.fired("vda".into(), t0);
    assert!(!cooldown.ready(&"vdb".into(), t0 + Duration::from_secs(10)));
    assert!(cooldown.ready(&"vdb".into(), t0 + Duration::from_secs(300)));
    assert!(!cooldown.ready(&"vda".into(), t0 + Duration::from_secs(300)));
    assert!(cooldown.ready(&"vda".into(), t0 + Duration::from_secs(1800)));
}

fn row(pid: u32, inode: u64, written: u64, disk: u64) -> FileRow {
    FileRow {
        pid,
        comm: format!("p{pid}"),
        file: FileIoStats {
            inode,
            fs_write_bytes: written,
            disk_write_bytes: disk,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn aggregation_ranks_processes_and_their_files_by_bytes_and_truncates() {
    let rows = vec![
        row(1, 10, 100, 0),
        row(2, 20, 5000, 4096),
        row(1, 11, 300, 512),
        row(1, 12, 50, 0),
        row(3, 30, 0, 0), // moved nothing: left out
        row(2, 0, 0, 8192),
    ];
    let (processes, top) = aggregate(rows, 2.0, 10, 2);
    assert_eq!(processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [2, 1]);
    let p1 = &processes[1];
    assert_eq!(p1.total_fs_write_bytes, 450);
    assert_eq!(p1.total_disk_write_bytes, 512);
    assert_eq!(p1.total_fs_write_bps, 225);
    assert_eq!(p1.total_file_count, 3);
    assert_eq!(
        p1.total_files.iter().map(|f| f.inode).collect::<Vec<_>>(),
        [11, 10]
    );
    assert_eq!(p1.total_files[0].fs_write_bps, 150);
    assert_eq!(
        top.iter()
            .map(|t| (t.pid, t.file.inode))
            .collect::<Vec<_>>(),
        [(2, 20), (2, 0), (1, 11), (1, 10), (1, 12)]
    );
    let (only_one, _) = aggregate(vec![row(1, 1, 1, 0), row(2, 2, 2, 0)], 1.0, 1, 5);
    assert_eq!(only_one.len(), 1);
    assert_eq!(only_one[0].pid, 2);
}

#[test]
fn document_body_keeps_upstreams_field_names() {
    let (processes, _) = aggregate(vec![row(7, 9, 4096, 4096)], 1.0, 10, 5);
    let value = serde_json::to_value(&processes[0]).unwrap();
    for key in [
        "pid",
        "comm",
        "container_hostname",
        "total_fs_read_bps",
        "total_fs_write_bps",
        "total_disk_read_bps",
        "total_disk_write_bps",
        "total_files",
        "total_file_count",
    ] {
        assert!(value.get(key).is_some(), "{key} missing: {value:#}");
    }
    for key in [
        "major",
        "minor",
        "dev_name",
        "inode",
        "path",
        "is_direct",
        "fs_read_bps",
        "fs_write_bps",
        "disk_read_bps",
        "disk_write_bps",
        "q2c_us",
        "d2c_us",
        "max_q2c_us",
        "max_d2c_us",
    ] {
        assert!(
            value["total_files"][0].get(key).is_some(),
            "{key} missing: {value:#}"
        );
    }
}

#[test]
fn kernel_strings_and_stack_lengths() {
    assert_eq!(c_string(b"victim.bin\0\0junk"), "victim.bin");
    assert_eq!(c_string(b"full"), "full");
    // bpf_get_stack's byte count, never past the buffer.
    let stack = [1u64, 2, 3, 4];
    assert_eq!(frames(&stack, 16), &[1, 2]);
    assert_eq!(frames(&stack, 4096), &stack);
    assert!(frames(&stack, 0).is_empty());
}

#[test]
fn key_splits_the_kernel_dev_t() {
    let key = FileKey {
        tgid: 1,
        dev: (259 << 20) | 3,
        ino: 12,
    };
    assert_eq!((key.major(), key.minor()), (259, 3));
    assert_eq!(std::mem::size_of::<FileKey>(), 16);
    assert_eq!(std::mem::size_of::<FileCounters>(), 8 * 10 + 8 + 16 + 64);
}

#[test]
fn config_rejects_bad_values() {
    assert!(IotracingConfig::default().validate().is_ok());
    for bad in [
        IotracingConfig {
            util_threshold: -1.0,
            ..Default::default()
        },
        IotracingConfig {
            capture_secs: 0,
            ..Default::default()
        },
        IotracingConfig {
            sample_ms: 1,
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn a_capture_that_cannot_attach_still_makes_a_document_saying_why() {
    use std::sync::atomic::AtomicBool;
    let ctx = crate::probes::testutil::context("cgroup-v2");
    let plan = capture::CapturePlan {
        ctx,
        reason: ReasonSnapshot {
            kind: Reason::IoUtil,
            device: "vda".into(),
            major_num: 254,
            minor_num: 0,
            iostatus: status(99.0, 0.0, 0.0),
            summary: "vda(254:0): io util 99.0% > 90% for two samples".into(),
        },
        duration: Duration::from_millis(120),
        sample_every: Duration::from_millis(50),
        max_processes: 10,
        max_files: 5,
        max_stacks: 5,
        stall_min: Duration::from_millis(100),
    };
    let (stop, attached) = (AtomicBool::new(false), AtomicBool::new(false));
    let started = Instant::now();
    let data = capture::run_with(&plan, &stop, &attached, |_| {
        Err(crate::ebpf::BpfError::Unsupported {
            probe: "iotracing",
            reason: "tracefs not found".into(),
        })
    });
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "the window still runs"
    );
    assert!(!attached.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        data.failure_reason.contains("tracefs not found"),
        "{data:?}"
    );
    assert!(data.process_file_io_stats.is_empty() && data.programs.is_empty());
    let value = serde_json::to_value(&data).unwrap();
    assert_eq!(value["reason_snapshot"]["type"], "ioutil");
    assert_eq!(value["reason_snapshot"]["device"], "vda");
    assert!(value["failure_reason"].is_string());
    assert!(value["io_schedule_timeout_stacks"].is_array());
}
