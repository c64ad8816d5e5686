use super::*;
use crate::config::ProbeSettings;

/// A record laid out as `struct hungtask_event` of hungtask.bpf.c.
fn record_bytes(tid: u32, pid: u32, comm: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; HungtaskRecord::SIZE];
    bytes[0..8].copy_from_slice(&123_456_789u64.to_le_bytes());
    bytes[8..16].copy_from_slice(&4242u64.to_le_bytes());
    bytes[16..24].copy_from_slice(&987_654_321u64.to_le_bytes());
    bytes[24..28].copy_from_slice(&tid.to_le_bytes());
    bytes[28..32].copy_from_slice(&pid.to_le_bytes());
    bytes[32..32 + comm.len()].copy_from_slice(comm);
    bytes
}

#[test]
fn records_decode_from_the_bpf_layout() {
    let record = HungtaskRecord::decode(&record_bytes(101, 100, b"sh")).unwrap();
    assert_eq!(
        record,
        HungtaskRecord {
            boot_ns: 123_456_789,
            cgroup_id: 4242,
            start_ns: 987_654_321,
            tid: 101,
            pid: 100,
            comm: "sh".to_string(),
        }
    );
    assert_eq!(record.task(), (101, 987_654_321));
    // Short records (a layout mismatch) are rejected, not misread.
    assert!(HungtaskRecord::decode(&record_bytes(1, 1, b"x")[..47]).is_none());
}

#[test]
fn a_task_gets_one_document_per_backoff_period() {
    let mut backoff = ReportBackoff::new(Duration::from_secs(600));
    let t0 = Instant::now();
    let task = (100, 5);
    assert!(backoff.allow(task, t0), "first report is saved");
    // khungtaskd reports it again every check period: counted, not saved.
    assert!(!backoff.allow(task, t0 + Duration::from_secs(120)));
    assert!(!backoff.allow(task, t0 + Duration::from_secs(599)));
    // Another task, or the same tid reused by a later task, is a new report.
    assert!(backoff.allow((101, 5), t0 + Duration::from_secs(1)));
    assert!(backoff.allow((100, 6), t0 + Duration::from_secs(1)));
    assert!(backoff.allow(task, t0 + Duration::from_secs(600)));
    // Expired entries are forgotten.
    assert_eq!(backoff.tracked(), 3);
    backoff.expire(t0 + Duration::from_secs(1200));
    assert_eq!(backoff.tracked(), 0);

    let mut every = ReportBackoff::new(Duration::ZERO);
    assert!(every.allow(task, t0));
    assert!(every.allow(task, t0));
}

#[test]
fn stacks_keep_the_frames_without_the_address_column() {
    let text = "[<0>] percpu_rwsem_wait+0x116/0x140\n\
                [<0>] __percpu_down_read+0x6e/0x100\n\
                [<0>] mnt_want_write+0x8e/0xa0\n\
                [<0>] path_openat+0xd6b/0x1120\n";
    assert_eq!(
        parse_stack(text),
        "percpu_rwsem_wait+0x116/0x140\n__percpu_down_read+0x6e/0x100\n\
         mnt_want_write+0x8e/0xa0\npath_openat+0xd6b/0x1120"
    );
    // With kptr_restrict lifted the address is a real one; still dropped.
    assert_eq!(
        parse_stack("[<ffffffff8a1c3e16>] do_syscall_64+0x71/0x280\n\n"),
        "do_syscall_64+0x71/0x280"
    );
    assert_eq!(parse_stack(""), "");
}

#[test]
fn stack_and_timeout_are_read_from_procfs() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("100/task/101");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("stack"), "[<0>] schedule+0x27/0xf0\n").unwrap();
    assert_eq!(
        read_stack(dir.path(), 100, 101).as_deref(),
        Ok("schedule+0x27/0xf0")
    );
    let err = read_stack(dir.path(), 100, 102).unwrap_err();
    assert!(err.contains("100/task/102/stack"), "{err}");

    let sysctl = dir.path().join(TIMEOUT_SYSCTL);
    std::fs::create_dir_all(sysctl.parent().unwrap()).unwrap();
    std::fs::write(&sysctl, "120\n").unwrap();
    assert_eq!(read_timeout_secs(&sysctl), Some(120));
    assert_eq!(read_timeout_secs(&dir.path().join("missing")), None);
}

#[test]
fn the_document_data_has_upstreams_field_names() {
    let data = HungtaskData {
        pid: 100,
        tid: 101,
        comm: "sh".into(),
        stack: "schedule+0x27/0xf0".into(),
        stack_error: None,
        hung_task_timeout_secs: Some(120),
    };
    let value = serde_json::to_value(&data).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "pid": 100, "tid": 101, "comm": "sh", "stack": "schedule+0x27/0xf0",
            "hung_task_timeout_secs": 120
        })
    );
}

#[test]
fn config_defaults_and_validation() {
    let config = HungtaskConfig::default();
    assert!(config.enabled);
    assert_eq!(config.interval_ms, 200);
    assert_eq!(config.report_backoff_secs, 600);
    assert!(config.validate().is_ok());
    let fast = HungtaskConfig {
        interval_ms: 50,
        ..HungtaskConfig::default()
    };
    assert!(fast.validate().is_err());
}

#[test]
fn start_is_unsupported_without_a_hung_task_detector() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::probes::testutil::host_only_context(dir.path());
    match HungtaskProbe::start(&HungtaskConfig::default(), &ctx) {
        Err(e) => {
            assert!(e.is_unsupported(), "{e}");
            assert!(e.to_string().contains("hung_task_timeout_secs"), "{e}");
        }
        Ok(_) => panic!("started without hung_task_timeout_secs"),
    }
}
