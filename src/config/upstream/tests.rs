//! The importer's pure parts: value conversions, errors naming file + line or key, the
//! agent-wide keys (no part sections needed), and the loader's upstream-file check. The mapping
//! onto every part section is tested with the real registry in tests/config_import.rs.

use std::path::Path;

use super::convert::{anchored_paths, listen_address, pcap_to_drop_filter};
use super::*;
use crate::config::{ConfigSource, FlagOverrides};

fn import(text: &str) -> Result<Imported, ImportError> {
    import_str(Path::new("/etc/huatuo/huatuo-bamai.conf"), text, &[])
}

#[test]
fn pcap_filters_that_are_protocol_and_port_sets_convert() {
    let ok = |f: &str| pcap_to_drop_filter(f).unwrap();
    assert_eq!(ok(""), (vec![], vec![]));
    assert_eq!(ok("tcp"), (vec!["tcp".into()], vec![]));
    assert_eq!(ok("tcp or udp"), (vec!["tcp".into(), "udp".into()], vec![]));
    assert_eq!(ok("port 53"), (vec![], vec![53]));
    assert_eq!(
        ok("tcp port 80 or tcp and port 443"),
        (vec!["tcp".into()], vec![80, 443])
    );
    assert_eq!(
        ok("tcp port 80 or udp port 80"),
        (vec!["tcp".into(), "udp".into()], vec![80])
    );
    assert_eq!(ok("icmp6"), (vec!["icmpv6".into()], vec![]));
}

#[test]
fn pcap_filters_we_cannot_express_exactly_are_refused_with_the_reason() {
    let err = |f: &str| pcap_to_drop_filter(f).unwrap_err();
    assert!(err("tcp port 80 or udp port 53").contains("not every combination"));
    assert!(err("tcp or port 22").contains("not every combination"));
    assert!(err("host 10.0.0.1").contains("`host 10.0.0.1` is not"));
    assert!(err("not tcp").contains("`not tcp` is not `[tcp|udp|...] [port N]`"));
    assert!(err("ip").contains("`ip` is not a protocol our filter knows"));
    assert!(err("tcp port http").contains("`http` is not a port number"));
}

#[test]
fn mount_point_regexes_of_anchored_paths_become_exact_paths() {
    assert_eq!(
        anchored_paths("(^/home$)|(^/$)|(^/boot$)").unwrap(),
        ["/home", "/", "/boot"]
    );
    assert_eq!(anchored_paths("^/data-1$").unwrap(), ["/data-1"]);
    assert!(anchored_paths("^/home").unwrap_err().contains("`^/home`"));
    assert!(anchored_paths("(^/mnt/.*$)").is_err());
}

#[test]
fn go_listen_addresses_become_socket_addresses() {
    assert_eq!(listen_address(":19704").unwrap(), "0.0.0.0:19704");
    assert_eq!(listen_address("localhost:1").unwrap(), "127.0.0.1:1");
    assert_eq!(listen_address("[::1]:80").unwrap(), "[::1]:80");
    assert!(listen_address("node-1:80")
        .unwrap_err()
        .contains("`node-1:80`"));
}

#[test]
fn malformed_toml_names_the_file_line_and_column() {
    let err = import("BlackList = []\n[Log]\n    Level = \"Info\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/huatuo/huatuo-bamai.conf:3:"),
        "file and line first: {text}"
    );
    assert!(
        matches!(err, ImportError::Syntax { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn wrong_types_and_values_name_the_key() {
    let cases = [
        ("[Log]\nLevel = 3\n", "`Log.Level`: expected a string"),
        (
            "[Log]\nLevel = \"Trace\"\n",
            "`Log.Level`: `trace` is not Debug",
        ),
        (
            "BlackList = \"diskio\"\n",
            "`BlackList`: expected a list of strings",
        ),
        (
            "[Pod]\nKubeletReadOnlyPort = 70000\n",
            "`Pod.KubeletReadOnlyPort`: 70000 is outside",
        ),
        (
            "[HTTPServer]\nListenAddress = \"nohost\"\n",
            "`HTTPServer.ListenAddress`: `nohost` is not",
        ),
        (
            "[Storage.Elasticsearch]\nAddress = \"http://es:9200\"\n",
            "`Storage.Elasticsearch`: Address, Username and Password must be set together",
        ),
    ];
    for (text, expected) in cases {
        let err = import(text).unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/huatuo/huatuo-bamai.conf: ") && err.contains(expected),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn agent_wide_keys_map_and_the_output_loads() {
    let imported = import(
        "LogLevel = \"Debug\"\n[HTTPServer]\nListenAddress = \":8080\"\nMaxEventStreamClients = 100\n",
    )
    .unwrap();
    assert_eq!(imported.config.agent.log_level, "debug");
    assert_eq!(imported.config.http.listen, "0.0.0.0:8080");
    assert!(imported
        .text
        .contains("# Imported from upstream HTTPServer.ListenAddress = \":8080\"\nlisten = \"0.0.0.0:8080\"\n"));
    // Keys come in name order (the TOML table is sorted).
    assert_eq!(
        imported.notes,
        [
            "HTTPServer.MaxEventStreamClients: built in here: at most 100 /v1/events/watch clients",
            "LogLevel: v1-era key, imported as upstream's Log.Level",
        ]
    );
    assert!(
        imported.unsupported.is_empty(),
        "{:?}",
        imported.unsupported
    );
}

#[test]
fn keys_without_counterpart_are_reported_in_stderr_form_and_in_the_file() {
    let imported = import(
        "[Runtime]\nCPULimitCores = 1.0\n[AutoTracing.CPUIdle]\nFilter = 1\n[Nope]\nX = 1\n",
    )
    .unwrap();
    let lines: Vec<String> = imported.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("not supported: AutoTracing.CPUIdle.Filter: cpuidle watches"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("not supported: Nope.X: not a key of upstream's configuration"));
    assert!(lines[2].starts_with("not supported: Runtime.CPULimitCores: no self cgroup limit"));
    assert!(
        imported.text.contains("# not supported: Nope.X: not a key"),
        "the report is in the file too"
    );
    // Parts this build does not have are reported, not written.
    let imported = import("[EventTracing.Dropwatch]\nMaxEventsPerSecond = 5\n").unwrap();
    assert_eq!(
        imported.unsupported[0].to_string(),
        "not supported: EventTracing.Dropwatch.MaxEventsPerSecond: `[probes.dropwatch]` is not part of this build"
    );
}

#[test]
fn upstream_file_given_as_ours_gets_one_error_pointing_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huatuo-bamai.conf");
    std::fs::write(&path, "BlackList = []\n[Log]\nLevel = \"Info\"\n[Pod]\n").unwrap();
    let err = ConfigSource {
        path: path.clone(),
        explicit: true,
        flags: FlagOverrides::default(),
        sections: Vec::new().into(),
    }
    .load()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("is upstream HUATUO's configuration format (keys BlackList, Log, Pod)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("huatuo-bamai config import {}", path.display())),
        "{err}"
    );
}
