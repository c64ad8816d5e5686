use super::*;

fn req() -> TaskRequest {
    TaskRequest::parse(br#"{"tracer_name":"profiler","timeout":5,"trace_args":["--duration","2"]}"#)
        .expect("valid body")
}

#[test]
fn parse_accepts_upstream_body() {
    let r = TaskRequest::parse(
        br#"{"request_id":"r1","tracer_name":"profiler","timeout":10,"data_type":"json","trace_args":["--pid","1"]}"#,
    )
    .expect("valid");
    assert_eq!(r.request_id.as_deref(), Some("r1"));
    assert_eq!(r.timeout, Duration::from_secs(10));
    assert_eq!(r.trace_args, vec!["--pid", "1"]);
}

#[test]
fn parse_names_the_bad_field() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "body"),
        (b"[1]", "body"),
        (br#"{"timeout":5}"#, "tracer_name"),
        (br#"{"tracer_name":"bpftrace","timeout":5}"#, "tracer_name"),
        (br#"{"tracer_name":"profiler"}"#, "timeout"),
        (br#"{"tracer_name":"profiler","timeout":3600}"#, "timeout"),
        (br#"{"tracer_name":"profiler","timeout":"5"}"#, "timeout"),
        (
            br#"{"tracer_name":"profiler","timeout":5,"trace_args":[1]}"#,
            "trace_args",
        ),
        (
            br#"{"tracer_name":"profiler","timeout":5,"extra":1}"#,
            "body",
        ),
    ];
    for (body, field) in cases {
        let e = TaskRequest::parse(body).expect_err("must be rejected");
        assert_eq!(e.field, *field, "body {:?}", String::from_utf8_lossy(body));
    }
    let e = TaskRequest::parse(br#"{"tracer_name":"bpftrace","timeout":5}"#).unwrap_err();
    assert!(e.to_string().contains("bpftrace"), "{e}");
}

#[test]
fn ids_are_16_alphanumerics_and_distinct() {
    let a = new_task_id();
    let b = new_task_id();
    assert_eq!(a.len(), 16);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

#[test]
fn concurrency_is_bounded_and_freed_on_finish() {
    let mut reg = TaskRegistry::new(TasksConfig {
        max_concurrent: 2,
        ..TasksConfig::default()
    });
    let a = reg.create(req()).expect("first");
    let _b = reg.create(req()).expect("second");
    assert_eq!(
        reg.create(req()),
        Err(CreateError::TooMany {
            running: 2,
            limit: 2
        })
    );
    assert!(reg.start(&a));
    reg.finish(&a, Ok(serde_json::json!({"ok": true})));
    assert_eq!(reg.get(&a).map(|t| t.status), Some(TaskStatus::Completed));
    reg.create(req()).expect("slot freed");
}

#[test]
fn stop_keeps_first_end_and_unknown_is_reported() {
    let mut reg = TaskRegistry::new(TasksConfig::default());
    let a = reg.create(req()).expect("create");
    assert!(reg.start(&a));
    assert!(reg.stop(&a));
    reg.finish(&a, Ok(Value::Null));
    let t = reg.get(&a).expect("kept");
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(t.data.is_none());
    assert!(!reg.stop("nosuchtask000000"));
}

#[test]
fn finished_tasks_are_bounded() {
    let mut reg = TaskRegistry::new(TasksConfig {
        keep_finished: 2,
        ..TasksConfig::default()
    });
    let ids: Vec<_> = (0..3).map(|_| reg.create(req()).expect("create")).collect();
    for id in &ids {
        reg.finish(id, Ok(Value::Null));
    }
    assert!(reg.get(&ids[0]).is_none(), "oldest finished dropped");
    assert!(reg.get(&ids[2]).is_some());
    assert_eq!(reg.list().len(), 2);
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn profiler_flags_become_profile_parameters() {
    let p = profiler_params(
        &args(&[
            "--duration",
            "3",
            "--cpu-mode=offcpu",
            "--offcpu-phase",
            "blocked",
            "--pid",
            "42",
            "--format",
            "collapsed",
        ]),
        Duration::from_secs(5),
    )
    .expect("valid");
    let get = |k: &str| p.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("seconds"), Some("3"));
    assert_eq!(get("type"), Some("offcpu"));
    assert_eq!(get("phase"), Some("blocked"));
    assert_eq!(get("pid"), Some("42"));
    assert_eq!(get("format"), Some("folded"));
    // Defaults: 10 s capped by the timeout, flamedata JSON.
    let p = profiler_params(&[], Duration::from_secs(4)).expect("valid");
    assert!(p.contains(&("seconds".into(), "4".into())), "{p:?}");
    assert!(p.contains(&("format".into(), "json".into())), "{p:?}");
}

#[test]
fn profiler_flags_are_checked() {
    let t = Duration::from_secs(5);
    for bad_args in [
        &["--duration", "9"][..],
        &["--duration"][..],
        &["--type", "memory"][..],
        &["--cpu-mode", "both"][..],
        &["--language", "java"][..],
        &["--frobnicate", "1"][..],
        &["oops"][..],
    ] {
        let e = profiler_params(&args(bad_args), t).expect_err("must be rejected");
        assert_eq!(e.field, "trace_args", "{bad_args:?}: {e}");
    }
}

#[test]
fn config_rejects_zero_concurrency() {
    let c = TasksConfig {
        max_concurrent: 0,
        ..TasksConfig::default()
    };
    assert!(c.validate().is_err());
}
