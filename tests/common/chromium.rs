//! Headless Debian Chromium for tests that look at what a browser shows (flame graph SVGs, the
//! status page): flags as this machine needs them (no sandbox as root, no background
//! networking on a closed network) and a fresh profile directory per run.

use std::path::Path;
use std::process::Command;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// True when Chromium is installed; without it a test skips, unless CI requires every backend.
pub fn available(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() {
        panic!("{test}: chromium missing (scripts/install-deps.sh installs it)");
    }
    eprintln!("SKIP {test}: {CHROMIUM} missing");
    false
}

/// Loads `url` headless with `extra` flags (`--dump-dom`, `--screenshot=…`); returns stdout.
pub fn run(profile_dir: &Path, url: &str, extra: &[String]) -> Vec<u8> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,600",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile_dir.display()));
    args.extend_from_slice(extra);
    args.push(url.to_string());
    let out = Command::new(CHROMIUM)
        .args(&args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
