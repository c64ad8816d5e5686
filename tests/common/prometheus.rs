//! A real Prometheus (Debian's `prometheus` package) scraping an agent on loopback every second,
//! for tests that check what Prometheus itself makes of our series, rules and dashboards.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get};

pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `prometheus` is installed; CI (HUATUO_REQUIRE_BPF) must have it.
pub fn installed(test: &str) -> bool {
    if Command::new("prometheus").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("HUATUO_REQUIRE_BPF").is_none(),
        "prometheus must be installed in CI (scripts/install-deps.sh test)"
    );
    eprintln!("SKIP {test}: prometheus not installed");
    false
}

impl Prometheus {
    /// Scrapes `127.0.0.1:{agent_port}` as job `job` every second, evaluating `rule_file` if given.
    pub fn start(agent_port: u16, job: &str, rule_file: Option<&str>) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        let rules = rule_file.map_or(String::new(), |f| format!("rule_files:\n  - {f}\n"));
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}\
                 scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// `GET {path}` parsed as JSON (`Null` when Prometheus does not answer 200 yet).
    pub fn api(&self, path: &str) -> serde_json::Value {
        match http_get(self.port, path) {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// An instant query through the HTTP API.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.api(&format!("/api/v1/query?query={encoded}"))
    }

    /// Waits until `promql` returns at least one series; panics naming it after `timeout`.
    pub fn wait_for_series(&self, promql: &str, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.query(promql);
            if let Some(result) = reply["data"]["result"].as_array().filter(|r| !r.is_empty()) {
                return result.clone();
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never returned {promql}: {reply}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
