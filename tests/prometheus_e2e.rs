//! End to end with a real Prometheus (Debian's `prometheus` package): the server scrapes the
//! agent on loopback and the series come back through Prometheus's HTTP API with our labels; the
//! shipped alert rules (deploy/prometheus/rules.yml) evaluate against it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::{installed, Prometheus};
use common::Agent;

#[test]
fn prometheus_scrapes_the_agent() {
    if !installed("prometheus_scrapes_the_agent") {
        return;
    }
    let agent = Agent::start(&["loadavg"]);
    let prom = Prometheus::start(agent.port, "huatuo", None);
    let series = prom.wait_for_series("huatuo_bamai_loadavg_load1", Duration::from_secs(60));
    let labels = &series[0]["metric"];
    assert_eq!(labels["host"], "test-host", "{labels}");
    assert_eq!(labels["region"], "test");
    assert_eq!(labels["job"], "huatuo");
    let value: f64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 0.0);

    // The whole scrape was accepted: the target is up and self metrics are stored too.
    let up = prom.query("up{job=\"huatuo\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let actors = prom.query("huatuo_bamai_actor_state{state=\"running\"} == 1");
    let running = actors["data"]["result"]
        .as_array()
        .map(|r| r.len())
        .unwrap_or(0);
    assert!(running >= 3, "running actors seen by Prometheus: {actors}");
}

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus"))
        .output()
    {
        Ok(out) => Some(out),
        Err(_) => {
            assert!(
                std::env::var_os("HUATUO_REQUIRE_BPF").is_none(),
                "promtool must be installed in CI (scripts/install-deps.sh test)"
            );
            None
        }
    }
}

/// Metric names a PromQL expression selects (identifiers starting with `huatuo_bamai_`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("huatuo_bamai_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The shipped alert rules: promtool accepts them, their unit tests (rules.test.yml, one firing
/// and one quiet case per alert) pass, every metric they select is one we document, and a real
/// Prometheus scraping a real agent evaluates every rule without error, with the always-present
/// series they need really there.
#[test]
fn shipped_alert_rules_are_valid_tested_and_evaluate_against_the_agent() {
    let Some(check) = promtool(&["check", "rules", "rules.yml"]) else {
        eprintln!("SKIP: promtool not installed");
        return;
    };
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let unit = promtool(&["test", "rules", "rules.test.yml"]).expect("promtool");
    assert!(
        unit.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&unit.stdout),
        String::from_utf8_lossy(&unit.stderr)
    );

    let rules_path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/rules.yml");
    // rules.yml is flat enough to read by line: each `- alert:` is followed by its `expr:`.
    let mut alerts: Vec<(String, String)> = Vec::new();
    for line in std::fs::read_to_string(rules_path).unwrap().lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert: ") {
            alerts.push((name.to_string(), String::new()));
        } else if let (Some(expr), Some(last)) = (line.strip_prefix("expr: "), alerts.last_mut()) {
            last.1 = expr.to_string();
        }
    }
    assert!(
        alerts.len() >= 10 && alerts.iter().all(|(_, expr)| !expr.is_empty()),
        "rules.yml read as {alerts:?}"
    );
    let tests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/rules.test.yml"
    ))
    .unwrap();
    let documented =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    for (alert, expr) in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test in rules.test.yml"
        );
        for name in metric_names(expr) {
            assert!(
                documented.contains(&format!("`{name}`")),
                "{alert} selects {name}, which docs/metrics.md does not list"
            );
        }
    }

    if !installed("shipped_alert_rules_are_valid_tested_and_evaluate_against_the_agent") {
        return;
    }
    let agent = Agent::start_with(&["loadavg"], "[sampler]\ninterval_ms = 500\n");
    let prom = Prometheus::start(agent.port, "huatuo-bamai", Some(rules_path));
    // Series every rule on the agent itself needs, present on any healthy agent.
    for needed in [
        "huatuo_bamai_up",
        "huatuo_bamai_actor_state",
        "huatuo_bamai_overhead_ratio",
        "huatuo_bamai_overhead_budget_ratio",
    ] {
        prom.wait_for_series(needed, Duration::from_secs(60));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = prom.api("/api/v1/rules");
        let evaluated: Vec<(String, String, String)> = reply["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["health"].as_str().unwrap_or_default().to_string(),
                    r["lastError"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let all_ok = evaluated.len() == alerts.len()
            && evaluated.iter().all(|(_, health, _)| health == "ok");
        if all_ok {
            // On a healthy agent nothing is firing.
            let firing = prom.query("ALERTS{alertstate=\"firing\"}");
            assert_eq!(firing["data"]["result"], serde_json::json!([]), "{firing}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules not all evaluated ok: {evaluated:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
