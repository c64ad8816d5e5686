//! `huatuo-bamai config import` on upstream's shipped huatuo-bamai.conf (HEAD and the v1-era
//! one, tests/fixtures/upstream/): every key mapped or reported, the result loads, and the agent
//! binary starts with it (`--dry-run`). Also upstream's flags on the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use huatuo_bamai::config::upstream::{import_file, Imported};
use huatuo_bamai::config::ConfigSource;
use huatuo_bamai::containers::ContainersConfig;
use huatuo_bamai::probes::{dropwatch::DropwatchConfig, mountpoint::MountpointConfig};
use huatuo_bamai::registry;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upstream")
        .join(name)
}

fn import(name: &str) -> Imported {
    import_file(&fixture(name), &registry::sections()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every leaf key of an upstream file, dotted.
fn upstream_keys(path: &Path) -> Vec<String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, inner) in table {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, inner, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    walk("", &toml::Value::Table(text.parse().unwrap()), &mut out);
    out
}

fn enabled(config: &huatuo_bamai::config::Config, probe: &str) -> bool {
    config.section_json(&format!("probes.{probe}"))["enabled"]
        .as_bool()
        .unwrap_or_else(|| panic!("probes.{probe} not loaded"))
}

#[test]
fn every_key_of_the_shipped_upstream_files_is_mapped_or_reported() {
    for name in ["huatuo-bamai.conf", "huatuo-bamai.v1.conf"] {
        let imported = import(name);
        let mut accounted: Vec<String> = imported
            .settings
            .iter()
            .map(|s| s.comment.clone())
            .collect();
        accounted.extend(imported.unsupported.iter().map(|u| u.to_string()));
        accounted.extend(imported.notes.iter().cloned());
        let accounted = accounted.join("\n");
        for key in upstream_keys(&fixture(name)) {
            assert!(
                accounted.contains(&key),
                "{name}: `{key}` is neither mapped nor reported:\n{accounted}"
            );
        }
        // What is reported is in the file too, as comments.
        for unsupported in &imported.unsupported {
            let first_words: String = unsupported
                .to_string()
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                imported.text.contains(&format!("# {first_words}")),
                "{name}: `{unsupported}` not in the output"
            );
        }
    }
}

#[test]
fn shipped_upstream_conf_maps_onto_our_keys() {
    let imported = import("huatuo-bamai.conf");
    let config = &imported.config;
    // BlackList = ["netdev_hw", "netdev_qdisc", "metax_gpu", "ascend_npu", "diskio", "tcp_retransmit"]
    assert!(!enabled(config, "diskio"));
    assert!(!enabled(config, "qdisc"));
    assert!(!enabled(config, "tcp_retransmit"));
    assert!(!enabled(config, "netdev_hw"));
    assert!(enabled(config, "netdev") && enabled(config, "softirq"));
    // DeviceList = ["eth0", "eth1"]
    let netdev_hw = config.section_json("probes.netdev_hw");
    assert_eq!(netdev_hw["devices"], "eth0|eth1");
    let dropwatch = config.section::<DropwatchConfig>();
    assert_eq!(dropwatch.protocols, ["tcp"], "Filter = \"tcp\"");
    assert!(dropwatch.ports.is_empty());
    let mountpoint = config.section::<MountpointConfig>();
    assert_eq!(mountpoint.mountpoints_included, ["/home", "/", "/boot"]);
    let netdev = config.section_json("probes.netdev");
    assert_eq!(
        netdev["device_excluded"],
        serde_json::json!([r"re:^(lo)|(docker\w*)|(veth\w*)$"])
    );
    // Upstream full-matches each DeviceList entry.
    let netdev_events = config.section_json("probes.netdev_events");
    assert_eq!(
        netdev_events["devices"],
        serde_json::json!([
            "re:^(?:eth0)$",
            "re:^(?:eth1)$",
            "re:^(?:bond4)$",
            "re:^(?:lo)$"
        ])
    );
    assert!(enabled(config, "netdev_events"));
    let vmstat = config.section_json("probes.memory_vmstat");
    assert_eq!(vmstat["host_excluded"], serde_json::json!(["re:total"]));
    assert!(vmstat["host_included"][0]
        .as_str()
        .unwrap()
        .starts_with("re:allocstall|nr_active_anon|"));
    // EventTracing.NetRxLatency: thresholds commented out (upstream's defaults), besteffort
    // excluded.
    let rx = config.section_json("probes.net_rx_latency");
    assert_eq!(
        rx["excluded_container_qos"],
        serde_json::json!(["besteffort"])
    );
    assert_eq!(rx["usercopy_threshold_ms"], 115);
    assert!(enabled(config, "net_rx_latency"));
    let containers = config.section::<ContainersConfig>();
    assert_eq!(
        containers.kubelet_client_cert,
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt,/etc/kubernetes/pki/apiserver-kubelet-client.key"
    );
    let unsupported: Vec<&str> = imported
        .unsupported
        .iter()
        .map(|u| u.key.as_str())
        .collect();
    assert_eq!(
        unsupported,
        [
            "AutoTracing.IssuesList",
            "EventTracing.IssuesList",
            "MetricCollector.NetdevDCB.DeviceList",
        ]
    );
    assert!(imported
        .notes
        .contains(&"BlackList: `metax_gpu` has no counterpart here; nothing to disable".into()));
}

#[test]
fn v1_era_keys_import_under_their_current_names() {
    let imported = import("huatuo-bamai.v1.conf");
    let config = &imported.config;
    assert_eq!(config.agent.log_level, "info");
    let es = config.section_json("events.elasticsearch");
    assert_eq!(es["enabled"], true);
    assert_eq!(
        es["addresses"],
        serde_json::json!(["http://127.0.0.1:9200"])
    );
    assert_eq!(es["username"], "elastic");
    let reclaim = config.section_json("probes.memory_reclaim");
    assert_eq!(reclaim["event_threshold_ms"], 900, "Deltath = 900000000 ns");
    // Tracing.BlackList = ["softlockup"], MetricCollector.BlackList = ["ethtool"]: only our
    // softlockup is blacklisted, so upstream runs netdev_qdisc and tcp_retransmit, and so do we.
    assert!(!enabled(config, "softlockup"));
    assert!(enabled(config, "qdisc") && enabled(config, "tcp_retransmit"));
    assert!(imported.unsupported.iter().any(|u| u.to_string()
        == "not supported: BlackList: `ethtool` is not an upstream tracer or collector name"));
}

#[test]
fn blacklisting_part_of_a_shared_probe_keeps_it_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huatuo-bamai.conf");
    std::fs::write(
        &path,
        "BlackList = [\"memory_free\", \"tcp_memory\", \"sockstat\"]\n",
    )
    .unwrap();
    let imported = import_file(&path, &registry::sections()).unwrap();
    assert!(enabled(&imported.config, "memory_reclaim"));
    assert!(
        !enabled(&imported.config, "sockstat"),
        "both of its names listed"
    );
    let report: Vec<String> = imported.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(report[0].starts_with(
        "not supported: BlackList: memory_free: here one probe, probes.memory_reclaim, does the work of memory_free, memory_reclaim, memory_reclaim_events"
    ), "{}", report[0]);
}

fn imported_file(dir: &Path) -> PathBuf {
    let out = Command::new(common::BIN)
        .args(["config", "import"])
        .arg(fixture("huatuo-bamai.conf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not supported: MetricCollector.NetdevDCB.DeviceList: netdev_dcb"),
        "{stderr}"
    );
    let path = dir.join("huatuo-bamai.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn the_agent_starts_with_the_imported_file_and_dry_run_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = imported_file(dir.path());
    let port = common::free_port();
    let mut child = Command::new(common::BIN)
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--control-socket")
        .arg(dir.path().join("control.sock"))
        .args(["--region", "r1", "--dry-run", "--disable-kubelet"])
        .env("HUATUO_EVENTS__STORE_PATH", dir.path().join("events.redb"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut healthy = false;
    while started.elapsed() < Duration::from_secs(30) && child.try_wait().unwrap().is_none() {
        if let Ok(reply) = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")) {
            healthy |= reply.status().is_success();
        }
        if healthy {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(healthy, "no /healthz 200 before exit:\n{stderr}");
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains("--dry-run: 2s passed, shutting down"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--disable-kubelet is upstream's flag; ours: [containers] kubelet_url"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "--dry-run took {:?}",
        started.elapsed()
    );
}

#[test]
fn upstream_conf_as_config_is_refused_with_the_import_hint() {
    let conf = fixture("huatuo-bamai.conf");
    let out = Command::new(common::BIN)
        .arg("--config")
        .arg(&conf)
        .arg("check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is upstream HUATUO's configuration format (keys AutoTracing, BlackList"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("huatuo-bamai config import {}", conf.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one error, not a wall: {stderr}");
}

#[test]
fn upstream_flags_on_the_binary_resolve_to_our_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = imported_file(dir.path());
    let out = Command::new(common::BIN)
        .arg("--config")
        .arg(&config)
        .args(["-region", "r2", "--log-debug", "--disable-storage"])
        .args([
            "--disable-tracing",
            "runqlat,ras,metax_gpu",
            "--procfs-prefix",
            "/host",
        ])
        .args(["--bpf-dir", "/opt/huatuo/bpf", "--enable-cgroup"])
        .arg("check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let resolved = toml::Value::Table(String::from_utf8_lossy(&out.stdout).parse().unwrap());
    let get = |path: &str| {
        path.split('.')
            .try_fold(&resolved, |v, k| v.get(k))
            .unwrap_or_else(|| panic!("{path} missing"))
            .clone()
    };
    assert_eq!(
        get("agent.region").as_str(),
        Some("r2"),
        "-region, Go style"
    );
    assert_eq!(get("agent.log_level").as_str(), Some("debug"));
    assert_eq!(get("agent.procfs_root").as_str(), Some("/host/proc"));
    assert_eq!(get("agent.sysfs_root").as_str(), Some("/host/sys"));
    assert_eq!(get("probes.runqlat.enabled").as_bool(), Some(false));
    assert_eq!(get("probes.ras.enabled").as_bool(), Some(false));
    assert_eq!(get("events.elasticsearch.enabled").as_bool(), Some(false));
    for note in [
        "--log-debug is upstream's flag; ours: --log-level debug",
        "--disable-tracing metax_gpu: no such part here; nothing to disable",
        "--disable-tracing is upstream's flag; ours: --disable runqlat,ras",
        "--bpf-dir /opt/huatuo/bpf ignored: the BPF programs are embedded in this binary",
        "--enable-cgroup ignored",
    ] {
        assert!(stderr.contains(note), "`{note}` missing:\n{stderr}");
    }
}

#[test]
fn a_malformed_upstream_file_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.conf");
    std::fs::write(
        &path,
        "BlackList = [\"diskio\"]\n[Pod]\nKubeletReadOnlyPort = = 1\n",
    )
    .unwrap();
    let out = Command::new(common::BIN)
        .args(["config", "import"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "huatuo-bamai config import: {}:3:",
            path.display()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing half-written on stdout");
    // And the loader refuses what the import would not have produced.
    let source = ConfigSource {
        path: path.clone(),
        explicit: true,
        flags: Default::default(),
        sections: registry::sections(),
    };
    assert!(source.load().is_err());
}

#[test]
fn autotracing_keys_map_onto_the_trigger_probes_with_their_units() {
    let imported = huatuo_bamai::config::upstream::import_str(
        Path::new("/etc/huatuo/huatuo-bamai.conf"),
        "[AutoTracing.CPUIdle]\nUserThreshold = 70\nDeltaUsageThreshold = 50\nInterval = 5\n\
         IntervalTracing = 600\nRunTracingToolTimeout = 8\n\
         [AutoTracing.CPUSys]\nSysThreshold = 40\n\
         [AutoTracing.Dload]\nThresholdLoad = 7\n\
         [AutoTracing.IOTracing]\nRbpsThreshold = 1000\nAwaitThreshold = 50\nMaxProcDump = 4\n\
         [AutoTracing.MemoryBurst]\nDeltaMemoryBurst = 150\nSlidingWindowLength = 30\n",
        &registry::sections(),
    )
    .unwrap();
    assert!(
        imported.unsupported.is_empty(),
        "{:?}",
        imported.unsupported
    );
    let value = |key: &str| -> serde_json::Value {
        imported
            .settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("{key} not set: {:?}", imported.settings))
    };
    assert_eq!(value("probes.cpuidle.user_percent"), 70.0);
    assert_eq!(value("probes.cpuidle.total_percent_delta"), 50.0);
    assert_eq!(value("probes.cpuidle.interval_ms"), 5000);
    assert_eq!(value("probes.cpuidle.cooldown_secs"), 600);
    assert_eq!(value("probes.cpuidle.capture_secs"), 8);
    assert_eq!(value("probes.cpusys.system_percent"), 40.0);
    assert_eq!(value("probes.dload.threshold"), 7.0);
    assert_eq!(
        value("probes.iotracing.nvme_read_bps_threshold"),
        1_048_576_000.0
    );
    assert_eq!(value("probes.iotracing.await_threshold_ms"), 50.0);
    assert_eq!(value("probes.iotracing.max_processes"), 4);
    assert_eq!(value("probes.memburst.burst_ratio"), 1.5);
    assert_eq!(value("probes.memburst.window"), 30);
    // The settings load through our own loader.
    let memburst = imported
        .config
        .section::<huatuo_bamai::probes::memburst::MemburstConfig>();
    assert_eq!((memburst.window, memburst.burst_ratio), (30, 1.5));
}
