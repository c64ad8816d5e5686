//! osmem-server (PyPI), an in-memory OpenSearch-compatible server: the real `_bulk`/`_search`
//! backend of the Elasticsearch sink tests. A restart starts empty.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The osmem-server binary inside the installed wheel; None (skip) when it is not installed,
/// unless CI (`HUATUO_REQUIRE_BPF`) requires every test backend.
pub fn binary(test: &str) -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import osmem_server, os; print(os.path.dirname(osmem_server.__file__))",
        ])
        .output()
        .ok();
    let path = out
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bin/osmem-server"))
        .filter(|p| p.exists());
    if path.is_none() {
        let why = "osmem-server is not installed (scripts/install-deps.sh test)";
        if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() {
            panic!("{test}: {why}");
        }
        eprintln!("SKIP {test}: {why}");
    }
    path
}

/// A running osmem-server (in memory: a restart starts empty). Killed on drop.
pub struct Osmem {
    pub child: Child,
    pub url: String,
}

impl Osmem {
    /// Starts on `addr` (`127.0.0.1:0` for any port); retries while a just-freed port is busy.
    pub fn start(bin: &Path, addr: &str) -> Osmem {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(bin)
                .args(["-addr", addr, "-no-stdin-watch", "-parent-pid"])
                .arg(std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn osmem-server");
            let mut line = String::new();
            if let Some(stdout) = child.stdout.take() {
                let _ = BufReader::new(stdout).read_line(&mut line);
            }
            let url = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["url"].as_str().map(str::to_string));
            match url {
                Some(url) => return Osmem { child, url },
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(
                        Instant::now() < deadline,
                        "osmem-server did not start on {addr}: {line}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        self.stop();
    }
}
