//! End to end with a real Prometheus (Debian's `prometheus` package): the server scrapes the
//! agent on loopback and the series come back through Prometheus's HTTP API with our labels.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_get, Agent};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(port: u16, promql: &str) -> serde_json::Value {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    match http_get(port, &format!("/api/v1/query?query={encoded}")) {
        Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

#[test]
fn prometheus_scrapes_the_agent() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("HUATUO_REQUIRE_BPF").is_none(),
            "prometheus must be installed in CI (scripts/install-deps.sh test)"
        );
        eprintln!("SKIP prometheus_scrapes_the_agent: prometheus not installed");
        return;
    }
    let agent = Agent::start(&["loadavg"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: huatuo\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            agent.port
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let _server = Server(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let series = loop {
        let reply = query(prom_port, "huatuo_bamai_loadavg_load1");
        if let Some(result) = reply["data"]["result"].as_array().filter(|r| !r.is_empty()) {
            break result.clone();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never stored huatuo_bamai_loadavg_load1: {reply}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let labels = &series[0]["metric"];
    assert_eq!(labels["host"], "test-host", "{labels}");
    assert_eq!(labels["region"], "test");
    assert_eq!(labels["job"], "huatuo");
    let value: f64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 0.0);

    // The whole scrape was accepted: the target is up and self metrics are stored too.
    let up = query(prom_port, "up{job=\"huatuo\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let actors = query(
        prom_port,
        "huatuo_bamai_actor_state{state=\"running\"} == 1",
    );
    let running = actors["data"]["result"]
        .as_array()
        .map(|r| r.len())
        .unwrap_or(0);
    assert!(running >= 3, "running actors seen by Prometheus: {actors}");
}
