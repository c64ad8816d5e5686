use super::*;
use crate::config::Section;

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
    // Short records (a layout mismatch) are rejected, not misread.
    assert!(HungtaskRecord::decode(&record_bytes(1, 1, b"x")[..47]).is_none());
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn saves_back_off_doubling_to_the_cap_as_upstream() {
    // Upstream: backoff.NewWithoutJitter(3h, 10min) with SetDecay(1h).
    let mut backoff = SaveBackoff::new(10 * MIN, 180 * MIN, 60 * MIN);
    let t0 = Instant::now();
    assert!(backoff.allow(t0), "the first report is saved");
    // khungtaskd reports again every check period: counted, not saved, for 10 min.
    assert!(!backoff.allow(t0 + 2 * MIN));
    assert!(!backoff.allow(t0 + 10 * MIN - Duration::from_secs(1)));
    // Then the periods double: 20, 40, 80, 160 min, then the 3 h cap.
    let mut at = t0 + 10 * MIN;
    for period in [20, 40, 80, 160, 180, 180] {
        assert!(backoff.allow(at), "saved at the end of the previous period");
        assert!(
            !backoff.allow(at + (period - 1) * MIN),
            "{period} min period"
        );
        at += period * MIN;
    }
    assert!(backoff.allow(at));
}

#[test]
fn a_quiet_hour_after_the_last_period_starts_the_backoff_over() {
    let mut backoff = SaveBackoff::new(10 * MIN, 180 * MIN, 60 * MIN);
    let t0 = Instant::now();
    assert!(backoff.allow(t0));
    assert!(backoff.allow(t0 + 10 * MIN)); // next period: 20 min
                                           // 20 min + 1 h is not exceeded: no decay, the period doubles to 40 min.
    let t2 = t0 + 10 * MIN + 80 * MIN;
    assert!(backoff.allow(t2));
    assert!(!backoff.allow(t2 + 39 * MIN));
    // 40 min + 1 h passes without a save: back to 10 min.
    let t3 = t2 + 101 * MIN;
    assert!(backoff.allow(t3));
    assert!(!backoff.allow(t3 + 9 * MIN));
    assert!(backoff.allow(t3 + 10 * MIN));

    // Decay 0 never starts over.
    let mut sticky = SaveBackoff::new(10 * MIN, 180 * MIN, Duration::ZERO);
    assert!(sticky.allow(t0));
    assert!(sticky.allow(t0 + 1000 * MIN));
    assert!(!sticky.allow(t0 + 1019 * MIN));
}

#[test]
fn a_zero_backoff_saves_every_report() {
    let mut every = SaveBackoff::new(Duration::ZERO, Duration::ZERO, 60 * MIN);
    let t0 = Instant::now();
    for _ in 0..5 {
        assert!(every.allow(t0));
    }
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
    let task = BlockedTask {
        pid: 100,
        tid: 101,
        comm: "sh".into(),
        stack: "schedule+0x27/0xf0\nio_schedule+0x46/0x70".into(),
        stack_error: None,
    };
    let gone = BlockedTask {
        pid: 200,
        tid: 200,
        comm: "dd".into(),
        stack: String::new(),
        stack_error: Some("/proc/200/task/200/stack: gone".into()),
    };
    let blocked = vec![task.clone(), gone];
    let data = HungtaskData {
        task: task.clone(),
        cpus_stack: String::new(),
        blocked_processes_stack: blocked_processes_text(&blocked),
        hung_task_timeout_secs: 120,
        blocked_tasks: blocked,
        blocked_tasks_total: 2,
    };
    let value = serde_json::to_value(&data).unwrap();
    assert_eq!(
        value["blocked_processes_stack"],
        "task:sh state:D pid:101 tgid:100\nCall Trace:\n schedule+0x27/0xf0\n io_schedule+0x46/0x70\n\
         task:dd state:D pid:200 tgid:200\nCall Trace:\n <stack unreadable: /proc/200/task/200/stack: gone>\n"
    );
    assert_eq!(value["tid"], 101);
    assert_eq!(value["blocked_tasks"][0]["comm"], "sh");
    let document = crate::events::EventDocument::new("h", "r", NAME, None, 0, value);
    let ours = serde_json::to_value(&document).unwrap();
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/hungtask.json"
    ))
    .unwrap();
    let optional = crate::events::document::upstream_omitempty(NAME);
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &optional);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
}

#[test]
fn stat_gives_comm_and_state_even_with_parentheses_in_the_comm() {
    assert_eq!(
        parse_stat("812 (jbd2/vda1-8) D 2 0 0 0 -1 2129984 0 0"),
        Some(("jbd2/vda1-8".to_string(), 'D'))
    );
    assert_eq!(
        parse_stat("42 (a) b (c)) S 1 42"),
        Some(("a) b (c)".to_string(), 'S'))
    );
    assert_eq!(parse_stat("42 no comm"), None);
    assert_eq!(parse_stat("42 (x)"), None);
}

/// A fake procfs with tasks `(pid, tid, comm, state, stack)`; a `None` stack leaves the file out.
fn fake_procfs(tasks: &[(u32, u32, &str, char, Option<&str>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (pid, tid, comm, state, stack) in tasks {
        let task = dir.path().join(format!("{pid}/task/{tid}"));
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(
            task.join("stat"),
            format!("{tid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 0 0"),
        )
        .unwrap();
        if let Some(stack) = stack {
            std::fs::write(task.join("stack"), stack).unwrap();
        }
    }
    // Not tasks: skipped.
    std::fs::create_dir_all(dir.path().join("self")).unwrap();
    std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
    dir
}

#[test]
fn blocked_tasks_are_the_d_state_ones_with_their_stacks() {
    let procfs = fake_procfs(&[
        (1, 1, "init", 'S', Some("[<0>] ep_poll+0x1/0x2\n")),
        (
            20,
            20,
            "sh",
            'D',
            Some("[<0>] percpu_rwsem_wait+0x116/0x140\n[<0>] vfs_write+0x1/0x2\n"),
        ),
        (20, 21, "sh worker", 'D', None),
        (
            3,
            3,
            "kworker/0:1",
            'I',
            Some("[<0>] worker_thread+0x1/0x2\n"),
        ),
        (
            100,
            100,
            "jbd2/vda1-8",
            'D',
            Some("[<0>] kjournald2+0xb6/0x280\n"),
        ),
    ]);
    let (tasks, total) = blocked_tasks(procfs.path(), 10);
    assert_eq!(total, 3);
    let ids: Vec<(u32, u32, &str)> = tasks
        .iter()
        .map(|t| (t.pid, t.tid, t.comm.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![
            (20, 20, "sh"),
            (20, 21, "sh worker"),
            (100, 100, "jbd2/vda1-8")
        ]
    );
    assert_eq!(
        tasks[0].stack,
        "percpu_rwsem_wait+0x116/0x140\nvfs_write+0x1/0x2"
    );
    assert!(tasks[0].stack_error.is_none());
    // A stack that cannot be read says why.
    assert!(tasks[1].stack.is_empty());
    assert!(
        tasks[1]
            .stack_error
            .as_deref()
            .is_some_and(|e| e.contains("20/task/21/stack")),
        "{:?}",
        tasks[1]
    );
    // Over the limit they are counted, not listed.
    let (tasks, total) = blocked_tasks(procfs.path(), 1);
    assert_eq!((tasks.len(), total), (1, 3));
    assert_eq!(
        blocked_tasks(&procfs.path().join("missing"), 10),
        (vec![], 0)
    );
}

#[test]
fn config_defaults_and_validation() {
    let config = HungtaskConfig::default();
    assert!(config.enabled);
    assert_eq!(config.interval_ms, 200);
    assert_eq!(config.report_backoff_secs, 600);
    assert_eq!(config.report_backoff_max_secs, 10_800);
    assert_eq!(config.report_backoff_decay_secs, 3600);
    assert_eq!(config.max_blocked_tasks, 256);
    assert!(config.validate().is_ok());
    let inverted = HungtaskConfig {
        report_backoff_max_secs: 60,
        ..HungtaskConfig::default()
    };
    assert!(inverted.validate().is_err());
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
