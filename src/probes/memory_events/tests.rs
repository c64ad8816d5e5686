use std::path::Path;

use super::*;
use crate::probes::testutil::*;

const V1_DOCKER: &str =
    "sys/fs/cgroup/memory/docker/d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const V1_KUBE: &str = "sys/fs/cgroup/memory/kubepods/pod11111111-2222-3333-4444-555555555555/c0ffeebbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const V2_DOCKER: &str =
    "sys/fs/cgroup/system.slice/docker-d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope";
const V2_LIBPOD: &str =
    "sys/fs/cgroup/machine.slice/libpod-b0d3a9dddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.scope";

const DOCKER_LABELS: &str = "container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",\
    container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"";
const KUBE_LABELS: &str = "container_host=\"c0ffeebbbbbb\",container_name=\"c0ffeebbbbbb\",\
    container_type=\"normal\",container_level=\"guaranteed\",container_hostnamespace=\"\"";

fn probe_with(config: &MemoryEventsConfig, ctx: &ProbeContext) -> MemoryEventsProbe {
    MemoryEventsProbe::start(config, ctx).unwrap()
}

fn probe_at(ctx: &ProbeContext) -> MemoryEventsProbe {
    probe_with(&MemoryEventsConfig::default(), ctx)
}

fn count(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn v2_fixture_exact_lines() {
    let text = collect_text(&mut probe_at(&context("cgroup-v2")));
    assert_lines(&text, &expected("memory_events-v2.txt"));
    // Every key of memory.events, for each of the four containers, nothing else.
    for key in ["low", "high", "max", "oom", "oom_kill", "oom_group_kill"] {
        assert_eq!(
            count(&text, &format!("{PREFIX}{key}{{")),
            4,
            "{key}\n{text}"
        );
    }
    assert_eq!(count(&text, PREFIX), 24, "{text}");
}

#[test]
fn v1_fixture_exact_lines() {
    let text = collect_text(&mut probe_at(&context("cgroup-v1")));
    assert_lines(&text, &expected("memory_events-v1.txt"));
    for key in ["oom_kill", "under_oom", "failcnt"] {
        assert_eq!(
            count(&text, &format!("{PREFIX}{key}{{")),
            3,
            "{key}\n{text}"
        );
    }
    // The oom_kill_disable setting is not an event.
    assert!(!text.contains("oom_kill_disable"), "{text}");
    assert_eq!(count(&text, PREFIX), 9, "{text}");
}

#[test]
fn included_and_excluded_filter_keys() {
    let config = MemoryEventsConfig {
        included: vec!["oom*".into()],
        excluded: vec!["oom_group_kill".into()],
        ..Default::default()
    };
    let text = collect_text(&mut probe_with(&config, &context("cgroup-v2")));
    assert_eq!(count(&text, &format!("{PREFIX}oom{{")), 4);
    assert_eq!(count(&text, &format!("{PREFIX}oom_kill{{")), 4);
    assert_eq!(count(&text, PREFIX), 8, "{text}");
}

#[test]
fn config_check_names_the_bad_key() {
    let config = MemoryEventsConfig {
        included: vec!["watermark_inc|watermark_dec".into()],
        ..Default::default()
    };
    let err = crate::config::Section::validate(&config)
        .map_err(|e| e.reason)
        .unwrap_err();
    assert!(err.starts_with("included: "), "{err}");
    assert!(MemoryEventsProbe::start(&config, &context("cgroup-v2")).is_err());
}

#[test]
fn v2_missing_file_is_skipped_quietly() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::remove_file(dir.path().join(V2_DOCKER).join("memory.events")).unwrap();
    let mut probe = probe_at(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("d0cce7aaaaaa"), "{text}");
    assert_eq!(count(&text, PREFIX), 18, "{text}");
}

#[test]
fn v2_malformed_and_truncated_files_skip_only_that_container() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::write(
        dir.path().join(V2_DOCKER).join("memory.events"),
        "low 0\nhigh \u{0}\u{7f}garbage\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(V2_LIBPOD).join("memory.events"),
        "low 0\nhi",
    )
    .unwrap();
    let mut probe = probe_at(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("d0cce7aaaaaa"), "{text}");
    assert!(!text.contains("b0d3a9dddddd"), "{text}");
    assert_eq!(count(&text, PREFIX), 12, "{text}");
    assert_eq!(collect_text(&mut probe), text);
}

#[test]
fn nothing_readable_is_an_error_naming_a_directory() {
    let dir = copy_fixture("cgroup-v2");
    for entry in walk(&dir.path().join("sys/fs/cgroup")) {
        if entry.ends_with("memory.events") {
            std::fs::write(&entry, "garbage").unwrap();
        }
    }
    let mut probe = probe_at(&context_at(dir.path()));
    let err = probe
        .collect(&mut MetricSet::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("memory_events") && err.contains("sys/fs/cgroup"),
        "{err}"
    );
}

#[test]
fn no_containers_is_an_empty_success() {
    let dir = tempfile::tempdir().unwrap();
    let (_tx, containers) = crate::containers::channel();
    let ctx = ProbeContext {
        procfs_root: dir.path().join("proc"),
        sysfs_root: dir.path().join("sys"),
        cgroup: crate::containers::CgroupLayout::detect(&dir.path().join("sys")),
        containers,
        events: crate::events::EventSender::new(),
        profiles: Default::default(),
        captures: Default::default(),
        hostname: "test-host".to_string(),
        region: "test".to_string(),
    };
    let mut set = MetricSet::default();
    probe_at(&ctx).collect(&mut set).unwrap();
    assert_eq!(set.series_count(), 0);
}

#[test]
fn v1_missing_failcnt_keeps_oom_control_keys() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::remove_file(dir.path().join(V1_KUBE).join("memory.failcnt")).unwrap();
    let text = collect_text(&mut probe_at(&context_at(dir.path())));
    assert_lines(
        &text,
        &format!("{PREFIX}oom_kill{{{KUBE_LABELS}}} 2\n{PREFIX}under_oom{{{KUBE_LABELS}}} 0"),
    );
    assert!(
        !text.contains(&format!("{PREFIX}failcnt{{{KUBE_LABELS}}}")),
        "{text}"
    );
    assert_eq!(count(&text, PREFIX), 8, "{text}");
}

#[test]
fn v1_malformed_failcnt_skips_only_that_file() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::write(dir.path().join(V1_KUBE).join("memory.failcnt"), "12x\n").unwrap();
    let text = collect_text(&mut probe_at(&context_at(dir.path())));
    assert!(
        !text.contains(&format!("{PREFIX}failcnt{{{KUBE_LABELS}}}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{PREFIX}oom_kill{{{KUBE_LABELS}}} 2")),
        "{text}"
    );
}

#[test]
fn v1_vendor_memory_events_are_read_and_win() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::write(
        dir.path().join(V1_DOCKER).join("memory.events"),
        "watermark_inc 12\nwatermark_dec 3\noom_kill 9\n",
    )
    .unwrap();
    let text = collect_text(&mut probe_at(&context_at(dir.path())));
    assert_lines(
        &text,
        &[
            format!("{PREFIX}watermark_inc{{{DOCKER_LABELS}}} 12"),
            format!("{PREFIX}watermark_dec{{{DOCKER_LABELS}}} 3"),
            format!("{PREFIX}oom_kill{{{DOCKER_LABELS}}} 9"),
            format!("{PREFIX}under_oom{{{DOCKER_LABELS}}} 0"),
            format!("{PREFIX}failcnt{{{DOCKER_LABELS}}} 0"),
        ]
        .join("\n"),
    );
    assert_eq!(
        count(&text, &format!("{PREFIX}oom_kill{{{DOCKER_LABELS}}}")),
        1
    );
}

#[test]
fn parses_failcnt() {
    assert_eq!(parse_failcnt("1523\n"), Ok(1523.0));
    assert!(parse_failcnt("").is_err());
    assert!(parse_failcnt("-1\n").is_err());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
