use super::*;
use crate::probes::testutil::{
    assert_repeats_host_series, assert_same_series, collect_text, context, context_at,
    copy_fixture, expected, fixture_root, real_proc_context,
};

fn probe(ctx: &ProbeContext) -> NetstatProbe {
    NetstatProbe::start(&NetstatConfig::default(), ctx).unwrap()
}

const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 3451590
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens
Tcp: 1 200 120000 -1 1159
";

#[test]
fn parses_header_and_value_pairs() {
    let stats = parse_netstat(SNMP).unwrap();
    assert_eq!(stats.len(), 8);
    assert_eq!(stats[0], ("Ip".into(), "Forwarding".into(), 2.0));
    assert_eq!(stats[6], ("Tcp".into(), "MaxConn".into(), -1.0));
    assert_eq!(stats[7], ("Tcp".into(), "ActiveOpens".into(), 1159.0));
    // A trailing blank line (seen on some kernels) is fine.
    assert_eq!(parse_netstat(&format!("{SNMP}\n")).unwrap().len(), 8);
    assert_eq!(parse_netstat("").unwrap(), vec![]);
}

#[test]
fn malformed_netstat_names_the_problem() {
    assert_eq!(
        parse_netstat("Tcp: A B\n").unwrap_err(),
        "Tcp: missing value line"
    );
    assert_eq!(
        parse_netstat("Tcp: A B\nTcp: 1\n").unwrap_err(),
        "Tcp: 2 fields but 1 values"
    );
    assert_eq!(
        parse_netstat("Tcp: A B\nUdp: 1 2\n").unwrap_err(),
        "Tcp: value line `Udp: 1 2` does not start with `Tcp:`"
    );
    assert_eq!(
        parse_netstat("Tcp: A B\nTcp: 1 x\n").unwrap_err(),
        "Tcp_B: `x` is not an integer"
    );
    assert_eq!(
        parse_netstat("garbage here\n1 2\n").unwrap_err(),
        "header `garbage here` does not start with `<Proto>:`"
    );
    assert_eq!(
        parse_netstat("Tcp: A-B\nTcp: 1\n").unwrap_err(),
        "Tcp: field name `A-B` is not a metric name"
    );
    assert_eq!(
        parse_netstat("Tcp: A\nTcp: 1\nTcp: A\nTcp: 2\n").unwrap_err(),
        "Tcp: section repeated"
    );
}

#[test]
fn fixture_v1_exports_tcp_sections_of_host_and_containers() {
    let text = collect_text(&mut probe(&context("cgroup-v1")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "be57efeeeeee");
    assert_same_series(&others, &expected("netstat-v1.txt"));
    assert!(text.contains("# TYPE huatuo_bamai_netstat_TcpExt_ListenOverflows gauge"));
    assert!(text.contains("# TYPE huatuo_bamai_netstat_container_Tcp_RetransSegs gauge"));
}

#[test]
fn fixture_v2_exports_tcp_sections_of_host_and_containers() {
    let text = collect_text(&mut probe(&context("cgroup-v2")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "c210cccccccc");
    assert_same_series(&others, &expected("netstat-v2.txt"));
}

#[test]
fn empty_include_list_exports_every_section_and_exclude_applies() {
    let config = NetstatConfig {
        included: Vec::new(),
        excluded: vec!["Icmp*".into(), "Tcp_MaxConn".into()],
        ..NetstatConfig::default()
    };
    let mut probe = NetstatProbe::start(&config, &context("cgroup-v1")).unwrap();
    let text = collect_text(&mut probe);
    let snmp = std::fs::read_to_string(fixture_root("cgroup-v1").join("proc/1/net/snmp")).unwrap();
    let host_udp = parse_netstat(&snmp)
        .unwrap()
        .into_iter()
        .find(|(proto, field, _)| proto == "Udp" && field == "InDatagrams")
        .unwrap()
        .2;
    assert!(text.contains(&format!(
        "huatuo_bamai_netstat_Udp_InDatagrams {host_udp}\n"
    )));
    assert!(text.contains("huatuo_bamai_netstat_IpExt_InOctets "));
    assert!(text.contains("huatuo_bamai_netstat_container_Ip_Forwarding{"));
    assert!(text.contains("huatuo_bamai_netstat_Tcp_RtoMin 200\n"));
    assert!(!text.contains("netstat_Icmp"));
    assert!(!text.contains("netstat_container_Icmp"));
    assert!(!text.contains("MaxConn"));
}

#[test]
fn bad_patterns_are_rejected_naming_the_key() {
    let config = NetstatConfig {
        included: vec!["*Tcp".into()],
        ..NetstatConfig::default()
    };
    let err = crate::config::Section::validate(&config)
        .map_err(|e| e.reason)
        .unwrap_err();
    assert!(err.starts_with("included: pattern `*Tcp`"), "{err}");
}

/// `text` with the first value of the `Tcp:` value line (RtoAlgorithm) set to `value`.
fn set_tcp_rto_algorithm(text: &str, value: &str) -> String {
    let line = text
        .lines()
        .filter(|l| l.starts_with("Tcp: "))
        .nth(1)
        .unwrap();
    let mut fields: Vec<&str> = line.split(' ').collect();
    fields[1] = value;
    text.replace(line, &fields.join(" "))
}

#[test]
fn second_collection_reports_new_values() {
    let dir = copy_fixture("cgroup-v2");
    let mut probe = probe(&context_at(dir.path()));
    collect_text(&mut probe);
    let path = dir.path().join("proc/4545/net/snmp");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, set_tcp_rto_algorithm(&text, "7")).unwrap();
    let text = collect_text(&mut probe);
    assert!(text.contains("huatuo_bamai_netstat_container_Tcp_RtoAlgorithm{container_host=\"b0d3a9dddddd\",container_name=\"b0d3a9dddddd\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"} 7\n"), "{text}");
}

#[test]
fn malformed_container_file_skips_only_that_file() {
    let dir = copy_fixture("cgroup-v1");
    // Truncated snmp: the Tcp value line is cut short.
    let path = dir.path().join("proc/4343/net/snmp");
    let text = std::fs::read_to_string(&path).unwrap();
    let values = text
        .lines()
        .filter(|l| l.starts_with("Tcp: "))
        .nth(1)
        .unwrap();
    let cut = text.find(values).unwrap() + 10;
    std::fs::write(&path, &text[..cut]).unwrap();
    // Garbage netstat for the other container.
    std::fs::write(
        dir.path().join("proc/4242/net/netstat"),
        "\u{0}\u{1}garbage",
    )
    .unwrap();
    let mut probe = probe(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    // c0ffee keeps its TcpExt (netstat) series, loses Tcp (snmp).
    assert!(
        text.contains("huatuo_bamai_netstat_container_TcpExt_TW{container_host=\"c0ffeebbbbbb\"")
    );
    assert!(
        !text.contains("huatuo_bamai_netstat_container_Tcp_RtoMin{container_host=\"c0ffeebbbbbb\"")
    );
    // d0cce7 keeps Tcp, loses TcpExt.
    assert!(
        text.contains("huatuo_bamai_netstat_container_Tcp_RtoMin{container_host=\"d0cce7aaaaaa\"")
    );
    assert!(
        !text.contains("huatuo_bamai_netstat_container_TcpExt_TW{container_host=\"d0cce7aaaaaa\"")
    );
    assert!(text.contains("huatuo_bamai_netstat_TcpExt_TW "));
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
        err.to_string().starts_with("netstat: cannot read "),
        "{err}"
    );
}

/// Fields that do not move while the test runs (settings, not traffic) equal the file's.
#[test]
fn host_values_match_real_proc() {
    let mut probe = NetstatProbe::start(
        &NetstatConfig {
            included: vec!["Tcp_Rto*".into(), "Tcp_MaxConn".into()],
            ..NetstatConfig::default()
        },
        &real_proc_context(),
    )
    .unwrap();
    let text = collect_text(&mut probe);
    let snmp = parse_netstat(&std::fs::read_to_string("/proc/1/net/snmp").unwrap()).unwrap();
    let mut checked = 0;
    for (proto, field, value) in snmp {
        if proto == "Tcp" && (field.starts_with("Rto") || field == "MaxConn") {
            let line = format!("huatuo_bamai_netstat_{proto}_{field} {value}\n");
            assert!(text.contains(&line), "no {line} in\n{text}");
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 4);
}
