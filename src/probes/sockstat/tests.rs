use super::*;
use crate::probes::testutil::{
    assert_lines, assert_repeats_host_series, assert_same_series, collect_text, context,
    context_at, copy_fixture, expected, real_proc_context,
};

/// A probe with 4 KiB pages, as the expected files assume.
fn probe(ctx: &ProbeContext) -> SockstatProbe {
    let mut probe = SockstatProbe::start(&SockstatConfig::default(), ctx).unwrap();
    probe.page_size = 4096;
    probe
}

const SOCKSTAT: &str = "\
sockets: used 14
TCP: inuse 1 orphan 0 tw 143 alloc 1 mem 157
UDP: inuse 0 mem 0
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";

#[test]
fn parses_proc_net_sockstat() {
    let stat = parse_sockstat(SOCKSTAT).unwrap();
    assert_eq!(stat.sockets_used, Some(14));
    assert_eq!(stat.protocols.len(), 5);
    let tcp = stat.protocol("TCP").unwrap();
    assert_eq!(tcp.get("tw"), Some(143));
    assert_eq!(tcp.get("mem"), Some(157));
    assert_eq!(stat.protocol("FRAG").unwrap().get("memory"), Some(0));
    assert_eq!(stat.protocol("UDPLITE").unwrap().get("mem"), None);
}

#[test]
fn malformed_sockstat_names_the_problem() {
    assert_eq!(
        parse_sockstat("").unwrap_err(),
        "no `sockets:` or protocol line"
    );
    assert_eq!(
        parse_sockstat("TCP: inuse 1 orphan\n").unwrap_err(),
        "TCP: `inuse 1 orphan` is not `key value` pairs"
    );
    assert_eq!(
        parse_sockstat("TCP: inuse x\n").unwrap_err(),
        "TCP inuse: `x` is not a count"
    );
    assert_eq!(
        parse_sockstat("garbage\n").unwrap_err(),
        "line `garbage` has no `<PROTO>:`"
    );
    assert_eq!(
        parse_sockstat("T-CP: inuse 1\n").unwrap_err(),
        "protocol `T-CP` is not a metric name"
    );
    assert_eq!(
        parse_sockstat("TCP: inuse 1\nTCP: inuse 2\n").unwrap_err(),
        "TCP: line repeated"
    );
}

#[test]
fn tcp_mem_limit_is_the_third_value() {
    assert_eq!(parse_tcp_mem_limit("287898\t383867\t575796\n"), Ok(575796));
    assert!(parse_tcp_mem_limit("1 2\n").is_err());
    assert!(parse_tcp_mem_limit("1 2 x\n").is_err());
    let tcp = TcpMemory::new(157, 575796, 4096);
    assert_eq!(tcp.usage_bytes, 643072);
    assert_eq!(tcp.usage_percent, 157.0 / 575796.0);
    assert_eq!(TcpMemory::new(5, 0, 4096).usage_percent, 0.0);
}

#[test]
fn fixture_v1_exports_host_containers_and_tcp_memory() {
    let text = collect_text(&mut probe(&context("cgroup-v1")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "be57efeeeeee");
    assert_same_series(&others, &expected("sockstat-v1.txt"));
    assert!(
        !text.contains("huatuo_bamai_sockstat_container_TCP_mem"),
        "{text}"
    );
}

#[test]
fn fixture_v2_exports_host_containers_and_tcp_memory() {
    let text = collect_text(&mut probe(&context("cgroup-v2")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "c210cccccccc");
    assert_same_series(&others, &expected("sockstat-v2.txt"));
}

#[test]
fn second_collection_reports_new_values() {
    let dir = copy_fixture("cgroup-v1");
    let mut probe = probe(&context_at(dir.path()));
    collect_text(&mut probe);
    let path = dir.path().join("proc/1/net/sockstat");
    let text = std::fs::read_to_string(&path).unwrap();
    let tcp = text.lines().find(|l| l.starts_with("TCP:")).unwrap();
    let (head, _) = tcp.rsplit_once(' ').unwrap();
    std::fs::write(&path, text.replace(tcp, &format!("{head} 287898"))).unwrap();
    std::fs::write(dir.path().join("proc/sys/net/ipv4/tcp_mem"), "1 2 575796\n").unwrap();
    let text = collect_text(&mut probe);
    assert_lines(
        &text,
        "huatuo_bamai_tcp_memory_usage_pages 287898
         huatuo_bamai_tcp_memory_usage_bytes 1179230208
         huatuo_bamai_tcp_memory_limit_pages 575796
         huatuo_bamai_tcp_memory_usage_percent 0.5
         huatuo_bamai_sockstat_TCP_mem 287898
         huatuo_bamai_sockstat_TCP_mem_bytes 1179230208",
    );
}

#[test]
fn missing_tcp_mem_drops_only_tcp_memory() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::remove_file(dir.path().join("proc/sys/net/ipv4/tcp_mem")).unwrap();
    let mut probe = probe(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("huatuo_bamai_tcp_memory"), "{text}");
    assert!(text.contains("huatuo_bamai_sockstat_TCP_mem "));
    assert!(text.contains("huatuo_bamai_sockstat_container_TCP_inuse{"));
    assert_eq!(probe.warn.active(), 1);
}

#[test]
fn malformed_container_file_skips_only_that_container() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::write(
        dir.path().join("proc/4343/net/sockstat"),
        "TCP: inuse 1 orph",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("proc/4545/net/sockstat")).unwrap();
    let mut probe = probe(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("c0ffee"), "{text}");
    assert!(!text.contains("b0d3a9"), "{text}");
    assert!(text.contains("container_name=\"d0cce7aaaaaa\""));
    assert!(text.contains("huatuo_bamai_sockstat_sockets_used "));
    assert_eq!(probe.warn.active(), 2);
}

#[test]
fn nothing_readable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = MetricSet::default();
    let err = probe(&context_at(dir.path()))
        .collect(&mut set)
        .unwrap_err();
    assert!(
        err.to_string().starts_with("sockstat: cannot read "),
        "{err}"
    );
}

/// The TCP memory limit is a setting: it equals the file's; the page size is the host's.
#[test]
fn host_values_match_real_proc() {
    let mut probe = SockstatProbe::start(&SockstatConfig::default(), &real_proc_context()).unwrap();
    assert_eq!(probe.page_size, page_size());
    let text = collect_text(&mut probe);
    let limit =
        parse_tcp_mem_limit(&std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem").unwrap())
            .unwrap();
    assert!(
        text.contains(&format!("huatuo_bamai_tcp_memory_limit_pages {limit}\n")),
        "{text}"
    );
    let stat = parse_sockstat(&std::fs::read_to_string("/proc/1/net/sockstat").unwrap()).unwrap();
    for proto in &stat.protocols {
        // Counts move with traffic; the set of series must match the file's.
        for (key, _) in &proto.values {
            let name = format!("huatuo_bamai_sockstat_{}_{key} ", proto.protocol);
            assert!(text.contains(&name), "no {name} in\n{text}");
        }
    }
    assert!(text.contains("huatuo_bamai_sockstat_sockets_used "));
}
