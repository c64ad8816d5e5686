use super::*;
use crate::probes::testutil::{
    assert_repeats_host_series, assert_same_series, collect_text, context, context_at,
    copy_fixture, expected, real_proc_context,
};

fn probe(ctx: &ProbeContext) -> NetdevProbe {
    NetdevProbe::start(&NetdevConfig::default(), ctx).unwrap()
}

fn with_config(config: NetdevConfig, ctx: &ProbeContext) -> NetdevProbe {
    NetdevProbe::start(&config, ctx).unwrap()
}

const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 3798754165 3445381    0    0    0     0          0         0 3798754165 3445381    0    0    0     0       0          0
  eth0: 259281015    6214    1    2    3     4          5         6   293922    3292    7    8    9    10      11         12
";

#[test]
fn parses_proc_net_dev() {
    let devices = parse_net_dev(NET_DEV).unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].device, "lo");
    assert_eq!(devices[0].values[0], 3_798_754_165);
    assert_eq!(
        devices[1],
        DeviceStats {
            device: "eth0".into(),
            values: [259281015, 6214, 1, 2, 3, 4, 5, 6, 293922, 3292, 7, 8, 9, 10, 11, 12],
        }
    );
}

#[test]
fn parses_old_kernel_format_without_space_after_colon() {
    let text = "Inter-|\n face |\n  eth0:123 1 0 0 0 0 0 0 456 2 0 0 0 0 0 0\n";
    let devices = parse_net_dev(text).unwrap();
    assert_eq!(devices[0].values[0], 123);
    assert_eq!(devices[0].values[8], 456);
}

#[test]
fn malformed_net_dev_names_the_problem() {
    assert_eq!(parse_net_dev("").unwrap_err(), "missing header line 1");
    assert_eq!(
        parse_net_dev("garbage\n").unwrap_err(),
        "header line 1 `garbage` lacks `|`"
    );
    let truncated = &NET_DEV[..NET_DEV.len() - 30];
    assert_eq!(
        parse_net_dev(truncated).unwrap_err(),
        "device eth0: missing transmit_fifo (line 4)"
    );
    let bad = NET_DEV.replace("259281015", "25928x015");
    assert_eq!(
        parse_net_dev(&bad).unwrap_err(),
        "device eth0: receive_bytes `25928x015` is not a counter"
    );
    let no_colon = NET_DEV.replace("eth0:", "eth0 ");
    assert!(parse_net_dev(&no_colon)
        .unwrap_err()
        .contains("has no `<device>:`"));
    let extra = NET_DEV.replace("      11         12", "      11         12 13");
    assert!(parse_net_dev(&extra).unwrap_err().contains("17th field"));
}

#[test]
fn fixture_v1_exports_host_and_container_devices() {
    let text = collect_text(&mut probe(&context("cgroup-v1")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "be57efeeeeee");
    assert_same_series(&others, &expected("netdev-v1.txt"));
    assert!(text.contains("# TYPE huatuo_bamai_netdev_receive_bytes_total counter"));
    assert!(text.contains("# TYPE huatuo_bamai_netdev_container_transmit_colls_total counter"));
    // lo is excluded by default.
    assert!(!text.contains("device=\"lo\""), "{text}");
}

#[test]
fn fixture_v2_exports_host_and_container_devices() {
    let text = collect_text(&mut probe(&context("cgroup-v2")));
    // On the host network: as upstream, it repeats the host's series.
    let others = assert_repeats_host_series(&text, "c210cccccccc");
    assert_same_series(&others, &expected("netdev-v2.txt"));
    assert!(text.contains("b0d3a9dddddd"));
}

#[test]
fn filters_devices_by_exact_name_and_prefix() {
    let config = NetdevConfig {
        device_included: vec!["ifb*".into(), "lo".into()],
        device_excluded: vec!["ifb1".into()],
        ..NetdevConfig::default()
    };
    let text = collect_text(&mut with_config(config, &context("cgroup-v1")));
    assert!(text.contains("device=\"ifb0\""));
    assert!(text.contains("device=\"lo\""));
    assert!(!text.contains("device=\"ifb1\""));
    assert!(!text.contains("device=\"eth0\""));
}

#[test]
fn bad_patterns_are_rejected_naming_the_key() {
    let config = NetdevConfig {
        device_excluded: vec!["et*h".into()],
        ..NetdevConfig::default()
    };
    let err = crate::config::Section::validate(&config)
        .map_err(|e| e.reason)
        .unwrap_err();
    assert!(err.starts_with("device_excluded: pattern `et*h`"), "{err}");
    let config = NetdevConfig {
        device_included: vec![String::new()],
        ..NetdevConfig::default()
    };
    let err = crate::config::Section::validate(&config)
        .map_err(|e| e.reason)
        .unwrap_err();
    assert_eq!(err, "device_included: empty pattern");
}

#[test]
fn second_collection_reports_new_counter_values() {
    let dir = copy_fixture("cgroup-v1");
    let ctx = context_at(dir.path());
    let mut probe = probe(&ctx);
    let first = collect_text(&mut probe);
    assert!(first.contains(
        "huatuo_bamai_netdev_container_receive_bytes_total{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\",device=\"eth0\"} 98765432"
    ));
    let path = dir.path().join("proc/4242/net/dev");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("98765432", "98769999")).unwrap();
    let second = collect_text(&mut probe);
    assert!(second.contains(
        "huatuo_bamai_netdev_container_receive_bytes_total{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\",device=\"eth0\"} 98769999"
    ));
}

#[test]
fn malformed_container_file_skips_only_that_container() {
    let dir = copy_fixture("cgroup-v1");
    let path = dir.path().join("proc/4242/net/dev");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 20]).unwrap();
    let mut probe = probe(&context_at(dir.path()));
    let text = collect_text(&mut probe);
    assert!(!text.contains("d0cce7"), "{text}");
    assert!(text.contains("c0ffeebbbbbb"));
    assert!(text.contains("huatuo_bamai_netdev_receive_bytes_total{device=\"eth0\"}"));
    assert_eq!(probe.warn.active(), 1);
    // Logged once: the problem stays recorded while it lasts, and clears once fixed.
    collect_text(&mut probe);
    assert_eq!(probe.warn.active(), 1);
    std::fs::write(
        &path,
        "Inter-|\n face |\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
    )
    .unwrap();
    let text = collect_text(&mut probe);
    assert!(text.contains("container_name=\"d0cce7aaaaaa\""));
    assert_eq!(probe.warn.active(), 0);
}

#[test]
fn missing_host_file_keeps_container_series() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::write(dir.path().join("proc/1/net/dev"), "garbage").unwrap();
    let text = collect_text(&mut probe(&context_at(dir.path())));
    assert!(
        !text.contains("huatuo_bamai_netdev_receive_bytes_total"),
        "{text}"
    );
    assert!(text.contains("huatuo_bamai_netdev_container_receive_bytes_total"));
}

#[test]
fn nothing_readable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context_at(dir.path());
    let mut set = MetricSet::default();
    let err = probe(&ctx).collect(&mut set).unwrap_err();
    assert!(
        err.to_string().starts_with("netdev: cannot read ")
            && err.to_string().contains("1/net/dev"),
        "{err}"
    );
}

/// Counters only grow, so the collected value lies between two direct reads of the file.
#[test]
fn host_values_match_real_proc() {
    let ctx = real_proc_context();
    let config = NetdevConfig {
        device_excluded: Vec::new(),
        ..NetdevConfig::default()
    };
    let mut probe = with_config(config, &ctx);
    let before = parse_net_dev(&std::fs::read_to_string("/proc/1/net/dev").unwrap()).unwrap();
    let text = collect_text(&mut probe);
    let after = parse_net_dev(&std::fs::read_to_string("/proc/1/net/dev").unwrap()).unwrap();
    assert!(!before.is_empty());
    for dev in &before {
        let Some(later) = after.iter().find(|d| d.device == dev.device) else {
            continue;
        };
        for (i, stat) in STATS.iter().enumerate() {
            let prefix = format!(
                "huatuo_bamai_netdev_{stat}_total{{device=\"{}\"}} ",
                dev.device
            );
            let line = text
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
            let value: f64 = line[prefix.len()..].parse().unwrap();
            assert!(
                value >= dev.values[i] as f64 && value <= later.values[i] as f64,
                "{line}: outside {}..{}",
                dev.values[i],
                later.values[i]
            );
        }
    }
}
