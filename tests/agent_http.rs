//! The HTTP surface against the real binary: upstream paths, labels, exposition validity,
//! and start-up configuration errors.

mod common;

use std::process::Command;

use common::{sample, Agent, BIN};

#[test]
fn serves_upstream_paths_with_host_and_region_labels() {
    let agent = Agent::start(&["loadavg"]);
    let metrics = agent.metrics();
    let load1 = sample(
        &metrics,
        "huatuo_bamai_loadavg_load1",
        &[("host", "test-host"), ("region", "test")],
    )
    .unwrap_or_else(|| panic!("no load1 series:\n{metrics}"));
    // Checked against the file read directly at the same time (loadavg moves slowly).
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    let direct: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        (load1 - direct).abs() < 1.0,
        "load1 {load1} vs /proc/loadavg {direct}"
    );
    for name in ["huatuo_bamai_loadavg_load5", "huatuo_bamai_loadavg_load15"] {
        assert!(
            sample(&metrics, name, &[("region", "test")]).is_some(),
            "{name} missing"
        );
    }
    // Self metrics.
    assert!(sample(&metrics, "huatuo_bamai_process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(sample(&metrics, "huatuo_bamai_process_cpu_seconds_total", &[]).is_some());
    assert_eq!(
        sample(
            &metrics,
            "huatuo_bamai_actor_state",
            &[("actor", "loadavg"), ("state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "huatuo_bamai_actor_state",
            &[("actor", "softirq"), ("state", "disabled")]
        ),
        Some(1.0)
    );

    // Upstream's self families: the fd limit as /proc says it, tracer runs and the running count.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.pid())).unwrap();
    let max_open: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(
        sample(&metrics, "huatuo_bamai_process_max_fds", &[]),
        Some(max_open)
    );
    assert_eq!(
        sample(
            &metrics,
            "huatuo_bamai_tracing_status_hitcount",
            &[("tracing", "loadavg")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "huatuo_bamai_tracing_status_hitcount",
            &[("tracing", "softirq")]
        ),
        Some(0.0)
    );
    let running = sample(&metrics, "huatuo_bamai_tracing_status_running", &[]).unwrap();

    // Upstream's shapes: 204 without a body for health, `{"data": …}` with maps and string codes.
    assert_eq!(agent.get("/healthz").unwrap(), (204, String::new()));
    assert_eq!(agent.get("/readyz").unwrap(), (204, String::new()));
    let (status, body) = agent.get("/version").unwrap();
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, version["data"]["version"].as_str()),
        (200, Some(env!("CARGO_PKG_VERSION")))
    );
    // The status page is served by the running agent and lists its live parts.
    let (status, page) = agent.get("/").unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<table id=\"parts\">"), "{page}");
    assert!(
        page.contains("<tr><td>loadavg</td><td>probe</td>"),
        "{page}"
    );
    assert!(page.contains("href=\"/metrics\""), "{page}");
    let tracers = tracers(&agent);
    for name in ["control", "http", "loadavg", "runqlat", "softirq"] {
        let tracer = &tracers[name];
        assert_eq!(tracer["name"], name, "{tracers:#}");
    }
    assert_eq!(
        (&tracers["loadavg"]["running"], &tracers["loadavg"]["flag"]),
        (&serde_json::json!(true), &serde_json::json!(1))
    );
    assert_eq!(tracers["loadavg"]["hit"], 1, "{tracers:#}");
    assert_eq!(tracers["loadavg"]["restart_interval"], 1, "{tracers:#}");
    assert_eq!(tracers["softirq"]["running"], false, "{tracers:#}");
    assert_eq!(tracers["http"]["flag"], 0, "{tracers:#}");
    let running_now = tracers
        .as_object()
        .unwrap()
        .values()
        .filter(|t| t["running"] == true)
        .count();
    assert_eq!(running, running_now as f64, "{tracers:#}");
    let (status, body) = agent.get("/nope").unwrap();
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

fn tracers(agent: &Agent) -> serde_json::Value {
    let (status, body) = agent.get("/tracers").unwrap();
    assert_eq!(status, 200, "{body}");
    let tracers: serde_json::Value = serde_json::from_str(&body).unwrap();
    tracers["data"].clone()
}

fn error_code(reply: &(u16, String)) -> (u16, String) {
    let body: serde_json::Value =
        serde_json::from_str(&reply.1).unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.1));
    let code = body["error"]["code"].as_str().unwrap_or_default();
    (reply.0, code.to_string())
}

#[test]
fn tracers_start_stop_and_put_config_as_upstream() {
    let agent = Agent::start(&["loadavg"]);
    // Start a stopped probe, stop it again; the second stop is a conflict, as upstream's.
    assert_eq!(agent.put("/tracers/sockstat/start", "").unwrap().0, 204);
    agent.wait_state("sockstat", "running", std::time::Duration::from_secs(10));
    assert_eq!(tracers(&agent)["sockstat"]["running"], true);
    let again = agent.put("/tracers/sockstat/start", "").unwrap();
    assert_eq!(error_code(&again), (409, "conflict".into()), "{again:?}");
    assert_eq!(agent.put("/tracers/sockstat/stop", "").unwrap().0, 204);
    assert_eq!(agent.actor_state("sockstat"), "disabled");
    let again = agent.put("/tracers/sockstat/stop", "").unwrap();
    assert_eq!(error_code(&again), (409, "conflict".into()), "{again:?}");
    let unknown = agent.put("/tracers/nosuch/start", "").unwrap();
    assert_eq!(
        error_code(&unknown),
        (404, "not_found".into()),
        "{unknown:?}"
    );
    assert!(
        unknown.1.contains("loadavg"),
        "names the known tracers: {unknown:?}"
    );
    let service = agent.put("/tracers/http/stop", "").unwrap();
    assert_eq!(
        error_code(&service),
        (409, "conflict".into()),
        "{service:?}"
    );

    // PUT /config: several keys at once, validated like `ctl set`, all or nothing.
    let ok = agent
        .put(
            "/config",
            r#"{"config": {"probes.loadavg.interval_ms": 250, "probes.arp.enabled": true}}"#,
        )
        .unwrap();
    assert_eq!(ok, (204, String::new()));
    agent.wait_state("arp", "running", std::time::Duration::from_secs(10));
    let bad = agent
        .put(
            "/config",
            r#"{"config": {"probes.arp.enabled": false, "probes.loadavg.interval_ms": "often"}}"#,
        )
        .unwrap();
    assert_eq!(error_code(&bad), (400, "invalid_request".into()), "{bad:?}");
    assert!(bad.1.contains("probes.loadavg.interval_ms"), "{bad:?}");
    assert_eq!(agent.actor_state("arp"), "running", "nothing applied");
    for body in ["not json", r#"{"config": {}}"#, r#"{"cfg": {"a": 1}}"#] {
        let reply = agent.put("/config", body).unwrap();
        assert_eq!(
            error_code(&reply),
            (400, "invalid_request".into()),
            "{body}: {reply:?}"
        );
    }
    let typo = agent
        .put("/config", r#"{"config": {"probes.nosuch.enabled": true}}"#)
        .unwrap();
    assert_eq!(
        error_code(&typo),
        (400, "invalid_request".into()),
        "{typo:?}"
    );
    assert!(typo.1.contains("nosuch"), "{typo:?}");
    // The agent kept serving.
    assert!(agent.metrics().contains("huatuo_bamai_loadavg_load1"));
}

#[test]
fn exposition_passes_promtool() {
    // Every registered probe; where BPF cannot run, BPF probes are inactive and export nothing.
    let probes = huatuo_bamai::registry::probe_names();
    let bpf = common::bpf_available("exposition_passes_promtool (BPF families)");
    let agent = Agent::start(&probes);
    // Two ticks of every probe, so rate-based families (cpu_util) are present too.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let metrics = agent.metrics();
    let mut families = vec![
        "huatuo_bamai_loadavg_load1",
        "huatuo_bamai_process_cpu_seconds_total",
        "huatuo_bamai_cpu_util_total",
        "huatuo_bamai_memory_vmstat_nr_free_pages",
        "huatuo_bamai_netdev_receive_bytes_total",
    ];
    if bpf {
        families.extend([
            "huatuo_bamai_softirq_latency",
            "huatuo_bamai_runqlat_latency",
            "huatuo_bamai_runqlat_latency_seconds",
            "huatuo_bamai_memory_free_allocpages_stall",
        ]);
    }
    for family in families {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{metrics}"
        );
    }
    match common::promtool_check(&metrics) {
        Some((ok, report)) => assert!(ok, "promtool check metrics failed:\n{report}\n{metrics}"),
        None if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() => {
            panic!("promtool missing in CI")
        }
        None => eprintln!("SKIP promtool check: promtool not installed"),
    }
}

#[test]
fn unknown_key_exits_2_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[probes.softirq]\nenabled = true\nthreshold_typo = 3\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("threshold_typo"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
}

#[test]
fn wrong_type_exits_2_and_check_config_prints_resolved_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[supervisor]\nmax_restarts = \"many\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("max_restarts"), "{stderr}");

    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/config/huatuo-bamai.toml");
    let out = Command::new(BIN)
        .args(["--config", good, "--region", "flagged", "check-config"])
        .env("HUATUO_PROBES__RUNQLAT__INTERVAL_MS", "4321")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("region = \"flagged\""), "{stdout}");
    assert!(stdout.contains("interval_ms = 4321"), "{stdout}");
}

#[test]
fn port_in_use_is_a_clear_start_up_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("c.sock");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, common::config_text(port, &socket, &["loadavg"], "")).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn series_cap_bounds_a_family_and_counts_drops() {
    if !common::bpf_available("series_cap_bounds_a_family_and_counts_drops") {
        return;
    }
    // softirq exports cpus x 2 vectors x 4 zones series; cap it at 3.
    let agent = Agent::start_with(&["softirq"], "[metrics]\nmax_series_per_family = 3\n");
    // Until the probe's first collection is published (slow when other agents load BTF too).
    let count = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("huatuo_bamai_softirq_latency{"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut metrics = agent.metrics();
    while count(&metrics) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        metrics = agent.metrics();
    }
    let kept = count(&metrics);
    assert_eq!(kept, 3, "{metrics}");
    let dropped = sample(
        &metrics,
        "huatuo_bamai_metric_series_dropped_total",
        &[("family", "huatuo_bamai_softirq_latency")],
    )
    .unwrap_or_else(|| panic!("no drop counter:\n{metrics}"));
    assert!(dropped > 0.0);
    assert!(
        agent.log().contains("series cap reached"),
        "{}",
        agent.log()
    );
    // Raising the cap live restores every series.
    let out = agent.ctl(&["set", "metrics.max_series_per_family", "1000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::thread::sleep(std::time::Duration::from_millis(600));
    let cpus = std::thread::available_parallelism().unwrap().get();
    let kept = agent
        .metrics()
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_softirq_latency{"))
        .count();
    assert_eq!(kept, cpus * 2 * 4);
}

#[test]
fn netdev_hw_exports_each_physical_nic_as_sysfs_says() {
    let agent = Agent::start(&["netdev_hw"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let metrics = agent.metrics();
    let mut physical = 0;
    for entry in std::fs::read_dir("/sys/class/net").unwrap() {
        let dir = entry.unwrap().path();
        let device = dir.file_name().unwrap().to_string_lossy().into_owned();
        let missed = dir.join("statistics/rx_missed_errors");
        let series = sample(
            &metrics,
            "huatuo_bamai_netdev_hw_rx_dropped_total",
            &[("device", &device)],
        );
        if !dir.join("device").exists() || !missed.exists() {
            assert_eq!(series, None, "virtual device {device} exported");
            continue;
        }
        physical += 1;
        let value: f64 = std::fs::read_to_string(&missed)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(series, Some(value), "{device}:\n{metrics}");
        let driver = std::fs::read_link(dir.join("device/driver")).unwrap();
        let driver = driver.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            sample(
                &metrics,
                "huatuo_bamai_netdev_hw_rx_dropped_total",
                &[("device", &device), ("driver", &driver)],
            )
            .is_some(),
            "{device} lacks driver {driver}"
        );
    }
    if physical == 0 {
        eprintln!("SKIP netdev_hw values: this host has no physical NIC with rx_missed_errors");
    }
}

/// `/readyz` answers 204 only once every enabled probe has attached (or found its feature
/// missing): polled from the moment the binary starts, the first 204 finds none still `starting`
/// or `disabled` (an enabled probe waiting for its turn once showed `disabled`, which counts as
/// ready).
#[test]
fn readyz_waits_for_every_enabled_probe() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let socket = dir.path().join("control.sock");
    let probes = [
        "loadavg", "softirq", "runqlat", "netstat", "sockstat", "arp", "cpu_util",
    ];
    let config = dir.path().join("huatuo-bamai.toml");
    std::fs::write(&config, common::config_text(port, &socket, &probes, "")).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !matches!(common::http_get(port, "/readyz"), Ok((204, _))) {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (_, body) = common::http_get(port, "/tracers").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let tracers: serde_json::Value = serde_json::from_str(&body).unwrap();
    for probe in probes {
        let state = tracers["data"][probe]["state"].as_str().unwrap_or_default();
        assert!(
            state == "running" || state == "inactive",
            "{probe} was {state} when /readyz first answered 204"
        );
    }
}
