use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::probes::common::keyed_file::parse_flat_keyed;
use crate::probes::testutil::*;

const V1_DOCKER: &str =
    "sys/fs/cgroup/memory/docker/d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const V2_DOCKER: &str =
    "sys/fs/cgroup/system.slice/docker-d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope";

fn probe_at(ctx: &ProbeContext) -> MemoryVmstatProbe {
    MemoryVmstatProbe::start(&MemoryVmstatConfig::default(), ctx).unwrap()
}

fn series_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn config_check_names_the_bad_key() {
    let mut config = MemoryVmstatConfig::default();
    assert_eq!(
        crate::config::Section::validate(&config).map_err(|e| e.reason),
        Ok(())
    );
    config.container_excluded = vec!["total|hierarchical".into()];
    let err = crate::config::Section::validate(&config)
        .map_err(|e| e.reason)
        .unwrap_err();
    assert!(err.starts_with("container_excluded: "), "{err}");
    assert!(err.contains("re:<regex>"), "{err}");
}

#[test]
fn v1_fixture_exact_lines() {
    let mut probe = probe_at(&context("cgroup-v1"));
    let text = collect_text(&mut probe);
    assert_same_series(&text, &expected("memory_vmstat-v1.txt"));
    assert!(text.contains("# TYPE huatuo_bamai_memory_vmstat_nr_dirty_threshold gauge"));
    // Upstream's regexps are unanchored: keys containing a listed name are exported too ...
    for present in [
        "memory_vmstat_nr_dirty_threshold ",
        "memory_vmstat_nr_free_pages_blocks ",
        "memory_vmstat_pgscan_direct_throttle ",
    ] {
        assert!(text.contains(present), "{present} missing:\n{text}");
    }
    // ... but not hierarchical totals, limits or unlisted keys.
    for absent in [
        "total_",
        "hierarchical",
        "_container_cache",
        "_container_rss",
        "memory_vmstat_pgfault",
        "nr_zone_",
    ] {
        assert!(!text.contains(absent), "{absent} exported:\n{text}");
    }
}

#[test]
fn v2_fixture_exact_lines() {
    let mut probe = probe_at(&context("cgroup-v2"));
    let text = collect_text(&mut probe);
    assert_same_series(&text, &expected("memory_vmstat-v2.txt"));
    let containers: Vec<String> = series_names(&text)
        .into_iter()
        .filter(|n| n.starts_with(CONTAINER_PREFIX))
        .map(|n| n[CONTAINER_PREFIX.len()..].to_string())
        .collect();
    assert_eq!(
        containers,
        [
            "active_anon",
            "active_file",
            "file_dirty",
            "file_writeback",
            "inactive_anon",
            "inactive_file",
            "pgdeactivate",
            "pgrefill",
            "pgscan_direct",
            "pgscan_kswapd",
            "pgsteal_direct",
            "pgsteal_kswapd",
            "shmem",
            "shmem_thp",
            "unevictable",
        ]
    );
    // Four containers, one series each per key.
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("huatuo_bamai_memory_vmstat_container_shmem{"))
            .count(),
        4
    );
}

#[test]
fn configured_lists_replace_the_defaults() {
    let config = MemoryVmstatConfig {
        host_included: vec!["pgpg*".into()],
        container_included: vec!["*active_anon".into()],
        ..Default::default()
    };
    let mut probe = MemoryVmstatProbe::start(&config, &context("cgroup-v1")).unwrap();
    let names = series_names(&collect_text(&mut probe));
    assert_eq!(
        names,
        [
            "huatuo_bamai_memory_vmstat_container_active_anon",
            "huatuo_bamai_memory_vmstat_container_inactive_anon",
            "huatuo_bamai_memory_vmstat_pgpgin",
            "huatuo_bamai_memory_vmstat_pgpgout",
        ]
    );
}

#[test]
fn values_are_read_afresh_each_tick() {
    let dir = copy_fixture("cgroup-v2");
    let ctx = context_at(dir.path());
    let mut probe = probe_at(&ctx);
    let line = |v: u64| {
        format!(
            "huatuo_bamai_memory_vmstat_container_pgscan_direct{{container_host=\"d0cce7aaaaaa\",\
             container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",\
             container_hostnamespace=\"\"}} {v}"
        )
    };
    assert_lines(&collect_text(&mut probe), &line(0));
    let stat = dir.path().join(V2_DOCKER).join("memory.stat");
    let text = std::fs::read_to_string(&stat)
        .unwrap()
        .replace("pgscan_direct 0\n", "pgscan_direct 77\n");
    std::fs::write(&stat, text).unwrap();
    assert_lines(&collect_text(&mut probe), &line(77));
}

#[test]
fn malformed_container_file_skips_only_that_container() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::write(
        dir.path().join(V1_DOCKER).join("memory.stat"),
        "cache 9338880\nrss \u{fffd}\u{fffd}garbage\n",
    )
    .unwrap();
    let mut probe = probe_at(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("d0cce7aaaaaa"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("huatuo_bamai_memory_vmstat_container_active_anon{"))
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("huatuo_bamai_memory_vmstat_nr_free_pages 1767438\n"));
    // The second tick logs nothing new and still succeeds.
    let again = collect_text(&mut probe);
    assert_eq!(again, text);
}

#[test]
fn truncated_container_file_skips_only_that_container() {
    let dir = copy_fixture("cgroup-v2");
    let stat = dir.path().join(V2_DOCKER).join("memory.stat");
    let full = std::fs::read_to_string(&stat).unwrap();
    // Cut in the middle of a line, as a short read would.
    std::fs::write(&stat, &full[..full.find("active_anon").unwrap() + 4]).unwrap();
    let mut probe = probe_at(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("d0cce7aaaaaa"), "{text}");
    assert!(text.contains("container_name=\"c0ffeebbbbbb\""), "{text}");
}

#[test]
fn missing_container_file_is_skipped() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::remove_file(dir.path().join(V2_DOCKER).join("memory.stat")).unwrap();
    let mut probe = probe_at(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("d0cce7aaaaaa"), "{text}");
    assert!(text.contains("container_name=\"b0d3a9dddddd\""), "{text}");
}

#[test]
fn bad_host_file_keeps_container_series() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::write(dir.path().join("proc/vmstat"), "nr_free_pages\n").unwrap();
    let mut probe = probe_at(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("huatuo_bamai_memory_vmstat_nr_"), "{text}");
    assert!(text.contains("huatuo_bamai_memory_vmstat_container_active_anon{"));
}

#[test]
fn bad_host_file_without_containers_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vmstat"), "garbage").unwrap();
    let mut probe = probe_at(&host_only_context(dir.path()));
    let mut set = MetricSet::default();
    let err = probe.collect(&mut set).unwrap_err().to_string();
    assert!(err.contains("malformed") && err.contains("vmstat"), "{err}");
    std::fs::remove_file(dir.path().join("vmstat")).unwrap();
    let err = probe
        .collect(&mut MetricSet::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read"), "{err}");
}

fn read_vmstat() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap();
    parse_flat_keyed(&text)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Host values against `/proc/vmstat` read directly around the collection: event counters
/// only grow, so they must lie between the two reads; `nr_*` gauges may move either way a
/// little.
#[test]
fn host_values_match_real_proc_vmstat() {
    let mut probe = probe_at(&host_only_context(Path::new("/proc")));
    let before = read_vmstat();
    let text = collect_text(&mut probe);
    let after = read_vmstat();
    let filter = NameFilter::new(Syntax::Wildcard)
        .include("host_included", &[HOST_INCLUDED.to_string()])
        .and_then(|f| f.exclude("host_excluded", &[EXCLUDED.to_string()]))
        .unwrap();
    let wanted: Vec<&String> = before.keys().filter(|k| filter.matches(k)).collect();
    assert!(!wanted.is_empty());
    let got: BTreeMap<String, f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((
                name.strip_prefix(HOST_PREFIX)?.to_string(),
                value.parse().ok()?,
            ))
        })
        .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), wanted, "{text}");
    for (key, value) in &got {
        let (a, b) = (before[key], after[key]);
        let (lo, hi) = (a.min(b), a.max(b));
        let slack = if key.starts_with("nr_") {
            hi / 10.0 + 1024.0
        } else {
            0.0
        };
        assert!(
            *value >= lo - slack && *value <= hi + slack,
            "{key}: exported {value}, file said {a} then {b}"
        );
    }
}

fn shipped_section(name: &str) -> toml::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/huatuo-bamai.toml");
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    table["probes"][name].clone()
}

#[test]
fn shipped_config_section_holds_the_defaults() {
    let shipped: MemoryVmstatConfig = shipped_section(NAME).try_into().unwrap();
    assert_eq!(shipped, MemoryVmstatConfig::default());
    let shipped: crate::probes::memory_events::MemoryEventsConfig =
        shipped_section("memory_events").try_into().unwrap();
    assert_eq!(shipped, Default::default());
}
