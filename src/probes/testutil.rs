//! Helpers for collector tests against the fixture trees in `tests/fixtures/cgroup-v1` and
//! `tests/fixtures/cgroup-v2` (procfs under `proc/`, sysfs under `sys/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::containers::{cgroupfs, CgroupLayout, ContainerSet};
use crate::core::probe::{Probe, ProbeContext};
use crate::exposition::{MetricSet, MetricStore};

pub fn fixture_root(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(layout)
}

/// A probe context over a fixture tree (or a copy of one), with the containers it holds.
pub fn context_at(root: &Path) -> ProbeContext {
    let sysfs_root = root.join("sys");
    let cgroup = CgroupLayout::detect(&sysfs_root);
    let containers = ContainerSet::new(cgroupfs::scan(&cgroup));
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(containers));
    ProbeContext {
        procfs_root: root.join("proc"),
        sysfs_root,
        cgroup,
        containers: rx,
        events: crate::events::EventSender::new(),
        profiles: Default::default(),
        captures: Default::default(),
        hostname: "test-host".to_string(),
        region: "test".to_string(),
    }
}

pub fn context(layout: &str) -> ProbeContext {
    context_at(&fixture_root(layout))
}

/// The real `/proc` and `/sys` with no containers (tests that compare with direct reads).
pub fn real_proc_context() -> ProbeContext {
    let (_tx, containers) = crate::containers::channel();
    ProbeContext {
        procfs_root: "/proc".into(),
        sysfs_root: "/sys".into(),
        cgroup: CgroupLayout::detect(Path::new("/sys")),
        containers,
        events: crate::events::EventSender::new(),
        profiles: Default::default(),
        captures: Default::default(),
        hostname: "test-host".to_string(),
        region: "test".to_string(),
    }
}

/// A context over `procfs_root` with no cgroupfs and no containers.
pub fn host_only_context(procfs_root: &Path) -> ProbeContext {
    let sysfs_root = procfs_root.join("no-sysfs");
    let (_tx, containers) = crate::containers::channel();
    ProbeContext {
        procfs_root: procfs_root.to_path_buf(),
        cgroup: CgroupLayout::detect(&sysfs_root),
        sysfs_root,
        containers,
        events: crate::events::EventSender::new(),
        profiles: Default::default(),
        captures: Default::default(),
        hostname: "test-host".to_string(),
        region: "test".to_string(),
    }
}

/// An expected exposition, `tests/fixtures/expected/<name>`.
pub fn expected(name: &str) -> String {
    let path = fixture_root("expected").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies a fixture tree into a temp dir (for tests that change files between collections).
pub fn copy_fixture(layout: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture_root(layout), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir").flatten() {
        let target = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(entry.path()).expect("stat");
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(entry.path()).expect("readlink");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if meta.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs one collection and renders it as `/metrics` would (no global labels).
pub fn collect_text<P: Probe>(probe: &mut P) -> String {
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    render(set)
}

pub fn render(set: MetricSet) -> String {
    let store = MetricStore::new(usize::MAX, Vec::new());
    store.publish("test", set, std::time::Duration::ZERO);
    store
        .render()
        .lines()
        .filter(|l| !l.contains("huatuo_bamai_scrape_collector_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Asserts every line of `expected` (blank lines and `#` comments skipped) is in `text`.
pub fn assert_lines(text: &str, expected: &str) {
    let missing: Vec<&str> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .filter(|l| !text.lines().any(|t| t == *l))
        .collect();
    assert!(
        missing.is_empty(),
        "missing lines:\n{}\n--- got:\n{text}",
        missing.join("\n")
    );
}

/// Every expected line is there and nothing else is, `# HELP`/`# TYPE` lines included.
pub fn assert_exact(text: &str, expected: &str) {
    assert_lines(text, expected);
    let wanted = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count();
    assert_eq!(text.lines().count(), wanted, "extra lines in:\n{text}");
}

/// Every sample line of `text` is expected and every expected line is there (`expected` lists
/// samples only).
pub fn assert_same_series(text: &str, expected: &str) {
    assert_lines(text, expected);
    let wanted = expected
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count();
    assert_eq!(samples(text).len(), wanted, "extra series in\n{text}");
}

/// The sample lines of an exposition (no `#` lines).
pub fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// Checks the container named `name` (on the host network, so reading the host's files through
/// its init pid) repeats every one of its series as the host series of the same family, as
/// upstream exports it; returns the exposition without that container's lines.
pub fn assert_repeats_host_series(text: &str, name: &str) -> String {
    let marker = format!("container_name=\"{name}\"");
    let (own, rest): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains(&marker));
    assert!(!own.is_empty(), "no series of {name}:\n{text}");
    for line in &own {
        let host = as_host_line(line);
        assert!(
            rest.contains(&host.as_str()),
            "{line}\nhas no host twin `{host}` in\n{text}"
        );
    }
    rest.iter().map(|l| format!("{l}\n")).collect()
}

/// A container sample line as its host family prints it: `_container` dropped from the name,
/// the `container_*` labels removed.
fn as_host_line(line: &str) -> String {
    let labels = regex::Regex::new(r#"container_[a-z]+="[^"]*",?"#).expect("valid regex");
    let line = line.replacen("_container_", "_", 1);
    labels
        .replace_all(&line, "")
        .replace(",}", "}")
        .replace("{}", "")
}
