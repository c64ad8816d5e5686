use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::probes::testutil::*;

const REAL_LINES: &str = "\
Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 
Node 0, zone    DMA32      1      1      4      2      5      4      3      3      4      2    752 
Node 0, zone   Normal  11211   5422   2339   1584   1117    884    736    559    450    403    871 
";

fn probe_at(ctx: &ProbeContext) -> MemoryBuddyinfoProbe {
    MemoryBuddyinfoProbe::start(&MemoryBuddyinfoConfig::default(), ctx).unwrap()
}

#[test]
fn parses_real_buddyinfo() {
    let zones = parse_buddyinfo(REAL_LINES).unwrap();
    assert_eq!(zones.len(), 3);
    assert_eq!(
        zones[2],
        ZoneFreeBlocks {
            node: "0".into(),
            zone: "Normal".into(),
            blocks: vec![11211, 5422, 2339, 1584, 1117, 884, 736, 559, 450, 403, 871],
        }
    );
    assert_eq!(zones[0].zone, "DMA");
    assert_eq!(zones[0].blocks.len(), 11);
}

#[test]
fn two_nodes_and_other_order_counts() {
    let zones = parse_buddyinfo(
        "Node 0, zone   Normal 1 2 3\nNode 1, zone  Movable 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n",
    )
    .unwrap();
    assert_eq!(zones[1].node, "1");
    assert_eq!(zones[1].zone, "Movable");
    assert_eq!(zones[1].blocks.len(), 14);
}

#[test]
fn malformed_and_truncated_name_the_line() {
    assert_eq!(
        parse_buddyinfo("Node 0, zone DMA 1 2\nNode 0, zone Normal 3 x4\n").unwrap_err(),
        "line 2: a block count is not an integer: `Node 0, zone Normal 3 x4`"
    );
    assert_eq!(
        parse_buddyinfo("Node 0, zone   Normal").unwrap_err(),
        "line 1: no block counts: `Node 0, zone   Normal`"
    );
    assert_eq!(
        parse_buddyinfo("Node 0, zo").unwrap_err(),
        "line 1: expected `zone <name>`: `Node 0, zo`"
    );
    assert!(parse_buddyinfo("Node x, zone DMA 1").is_err());
    assert!(parse_buddyinfo("\u{0}\u{1}\u{2}").is_err());
    assert!(parse_buddyinfo("")
        .unwrap_err()
        .contains("empty or truncated"));
}

#[test]
fn v1_fixture_exact_lines() {
    let text = collect_text(&mut probe_at(&context("cgroup-v1")));
    assert_lines(&text, &expected("memory_buddyinfo-v1.txt"));
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("huatuo_bamai_memory_buddyinfo_blocks{"))
            .count(),
        33
    );
}

#[test]
fn v2_fixture_exact_lines() {
    let text = collect_text(&mut probe_at(&context("cgroup-v2")));
    assert_lines(&text, &expected("memory_buddyinfo-v2.txt"));
}

#[test]
fn bad_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut probe = probe_at(&host_only_context(dir.path()));
    let err = probe
        .collect(&mut MetricSet::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read") && err.contains("buddyinfo"),
        "{err}"
    );
    std::fs::write(dir.path().join("buddyinfo"), "Node 0, zone DMA 1 2 ga").unwrap();
    let err = probe
        .collect(&mut MetricSet::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("malformed") && err.contains("line 1"), "{err}");
}

fn blocks(text: &str) -> BTreeMap<(String, String, usize), f64> {
    let mut out = BTreeMap::new();
    for zone in parse_buddyinfo(text).unwrap() {
        for (order, count) in zone.blocks.iter().enumerate() {
            out.insert((zone.node.clone(), zone.zone.clone(), order), *count as f64);
        }
    }
    out
}

fn exported(text: &str) -> BTreeMap<(String, String, usize), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_memory_buddyinfo_blocks{"))
    {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            labels[start..].split('"').next().unwrap().to_string()
        };
        out.insert(
            (
                label("node"),
                label("zone"),
                label("order").parse().unwrap(),
            ),
            value.parse().unwrap(),
        );
    }
    out
}

/// Against `/proc/buddyinfo` read directly: retried until the file is unchanged around the
/// collection (then values must match exactly); on a busy host, within a tolerance.
#[test]
fn host_values_match_real_proc_buddyinfo() {
    let mut probe = probe_at(&host_only_context(Path::new("/proc")));
    let mut last = None;
    for _ in 0..20 {
        let before = blocks(&std::fs::read_to_string("/proc/buddyinfo").unwrap());
        let got = exported(&collect_text(&mut probe));
        let after = blocks(&std::fs::read_to_string("/proc/buddyinfo").unwrap());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>()
        );
        if before == after {
            assert_eq!(got, before);
            return;
        }
        last = Some((before, got, after));
    }
    let (before, got, after) = last.unwrap();
    for (key, value) in got {
        let (a, b) = (before[&key], after[&key]);
        let slack = a.max(b) / 5.0 + 256.0;
        assert!(
            value >= a.min(b) - slack && value <= a.max(b) + slack,
            "{key:?}: exported {value}, file said {a} then {b}"
        );
    }
}
