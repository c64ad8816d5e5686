use super::*;
use crate::probes::testutil::{
    assert_lines, assert_repeats_host_series, assert_same_series, collect_text, context,
    context_at, copy_fixture, expected, real_proc_context,
};

fn probe(ctx: &ProbeContext) -> ArpProbe {
    ArpProbe::start(&ArpConfig::default(), ctx).unwrap()
}

const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
192.0.2.7        0x1         0x2         02:fc:00:00:00:07     *        eth0
";

const ARP_CACHE: &str = "\
entries  allocs   destroys hash_grows lookups  hits
0000001a 00000001 00000000 00000000   00000004 00000000
0000001a 00000001 00000000 00000000   00000004 00000004
";

#[test]
fn counts_arp_lines_after_the_header() {
    assert_eq!(parse_arp_entries(ARP), Ok(2));
    assert_eq!(parse_arp_entries(ARP.lines().next().unwrap()), Ok(0));
    assert_eq!(parse_arp_entries("").unwrap_err(), "empty (no header line)");
    assert_eq!(
        parse_arp_entries("\u{0}garbage\n").unwrap_err(),
        "header `\u{0}garbage` does not start with `IP address`"
    );
}

#[test]
fn reads_hex_entries_of_arp_cache() {
    assert_eq!(parse_arp_cache_entries(ARP_CACHE), Ok(26));
    assert_eq!(
        parse_arp_cache_entries("allocs\n1\n").unwrap_err(),
        "header `allocs` has no `entries` column"
    );
    assert_eq!(
        parse_arp_cache_entries("entries allocs\n").unwrap_err(),
        "no data line"
    );
    assert_eq!(
        parse_arp_cache_entries("entries allocs\nzz 1\n").unwrap_err(),
        "entries `zz` is not hexadecimal"
    );
    assert_eq!(
        parse_arp_cache_entries("").unwrap_err(),
        "empty (no header line)"
    );
}

#[test]
fn fixture_v1_exports_host_total_and_containers() {
    let text = collect_text(&mut probe(&context("cgroup-v1")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "be57efeeeeee");
    assert_same_series(&others, &expected("arp-v1.txt"));
}

#[test]
fn fixture_v2_exports_host_total_and_containers() {
    let text = collect_text(&mut probe(&context("cgroup-v2")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "c210cccccccc");
    assert_same_series(&others, &expected("arp-v2.txt"));
}

#[test]
fn second_collection_reports_new_values() {
    let dir = copy_fixture("cgroup-v1");
    let mut probe = probe(&context_at(dir.path()));
    collect_text(&mut probe);
    std::fs::write(dir.path().join("proc/4242/net/arp"), ARP).unwrap();
    std::fs::write(dir.path().join("proc/net/stat/arp_cache"), ARP_CACHE).unwrap();
    let text = collect_text(&mut probe);
    assert_lines(
        &text,
        "huatuo_bamai_arp_total 26
         huatuo_bamai_arp_container_entries{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"} 2",
    );
}

#[test]
fn malformed_files_skip_only_their_series() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::write(dir.path().join("proc/4343/net/arp"), "garbage").unwrap();
    std::fs::write(dir.path().join("proc/net/stat/arp_cache"), "entries\n").unwrap();
    let mut probe = probe(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("c0ffee"), "{text}");
    assert!(!text.contains("huatuo_bamai_arp_total"), "{text}");
    assert!(text.contains("huatuo_bamai_arp_entries 1\n"));
    assert!(text.contains("container_name=\"b0d3a9dddddd\""));
    assert_eq!(probe.warn.active(), 2);
}

#[test]
fn nothing_readable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = MetricSet::default();
    let err = probe(&context_at(dir.path()))
        .collect(&mut set)
        .unwrap_err();
    assert!(err.to_string().starts_with("arp: cannot read "), "{err}");
}

/// ARP tables change slowly; allow a re-read if they moved between the two reads.
#[test]
fn host_values_match_real_proc() {
    let mut probe = probe(&real_proc_context());
    let mut last = String::new();
    for _ in 0..5 {
        let entries =
            parse_arp_entries(&std::fs::read_to_string("/proc/1/net/arp").unwrap()).unwrap();
        let total =
            parse_arp_cache_entries(&std::fs::read_to_string("/proc/net/stat/arp_cache").unwrap())
                .unwrap();
        let text = collect_text(&mut probe);
        if text.contains(&format!("huatuo_bamai_arp_entries {entries}\n"))
            && text.contains(&format!("huatuo_bamai_arp_total {total}\n"))
        {
            return;
        }
        last = text;
    }
    panic!("host ARP values never matched the files:\n{last}");
}
