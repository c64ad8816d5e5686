//! A loop device over a temp file (block I/O tests: iolatency, adaptive sampling).

use std::process::Command;
use std::time::Duration;

/// A loop device over a temp file, detached on drop.
pub struct LoopDevice {
    pub path: String,
    _file: tempfile::NamedTempFile,
}

impl LoopDevice {
    /// A fresh zeroed `size_mb` MiB backing file.
    pub fn create(size_mb: u64) -> LoopDevice {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(size_mb << 20).unwrap();
        Self::over(file)
    }

    /// Over an existing image (e.g. one `mkfs` prepared); detached on drop.
    pub fn over(file: tempfile::NamedTempFile) -> LoopDevice {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file.path())
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        LoopDevice { path, _file: file }
    }

    pub fn name(&self) -> &str {
        self.path.trim_start_matches("/dev/")
    }

    /// `maj:min` from sysfs.
    pub fn disk(&self) -> String {
        std::fs::read_to_string(format!("/sys/block/{}/dev", self.name()))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Reads + writes completed, from /proc/diskstats.
    pub fn completions(&self) -> u64 {
        let stats = std::fs::read_to_string("/proc/diskstats").unwrap();
        let line = stats
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(self.name()))
            .expect("device in diskstats");
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(3)
            .map(|f| f.parse().unwrap())
            .collect();
        fields[0] + fields[4]
    }

    pub fn dd(&self, args: &[&str]) {
        let out = Command::new("dd").args(args).output().expect("dd");
        assert!(
            out.status.success(),
            "dd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Completions of `device` once they stopped changing for 300 ms (at most ~15 s).
pub fn wait_quiet(device: &LoopDevice) -> u64 {
    let mut last = device.completions();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = device.completions();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
    }
}
