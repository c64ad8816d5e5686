//! Container discovery against the real cgroupfs of this host: a cgroup created by the test with
//! a process in it and a container-style name is discovered (keyed by its cgroup id), attributed,
//! and expires when removed.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::Agent;

/// A container-style cgroup (`docker/<id>`) in every hierarchy that matters, removed on drop.
struct TestContainer {
    id: String,
    dirs: Vec<PathBuf>,
    process: Child,
}

impl TestContainer {
    fn create() -> Option<TestContainer> {
        let id = format!(
            "{:016x}",
            std::process::id() as u64 * 0x9e37_79b9 ^ Instant::now().elapsed().as_nanos() as u64
        )
        .repeat(4);
        let root = PathBuf::from("/sys/fs/cgroup");
        let v2 = root.join("cgroup.controllers").exists();
        let hierarchies: Vec<PathBuf> = if v2 {
            vec![root.clone()]
        } else {
            ["cpu", "cpuacct", "cpu,cpuacct", "memory", "pids", "unified"]
                .iter()
                .map(|h| root.join(h))
                .filter(|h| h.is_dir() && !h.is_symlink())
                .collect()
        };
        let process = Command::new("sleep").arg("120").spawn().ok()?;
        let mut dirs = Vec::new();
        for hierarchy in hierarchies {
            let dir = hierarchy.join("docker").join(&id);
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(dir.join("cgroup.procs"), process.id().to_string()).ok()?;
            dirs.push(dir);
        }
        Some(TestContainer { id, dirs, process })
    }

    /// The cgroup id discovery must report: the inode of the cgroup's v2 directory (what
    /// bpf_get_current_cgroup_id() returns), else of its cpu hierarchy directory.
    fn expected_cgroup_id(&self) -> u64 {
        let v2 = |d: &&PathBuf| {
            d.starts_with("/sys/fs/cgroup/unified")
                || d.parent() == Some(std::path::Path::new("/sys/fs/cgroup/docker"))
        };
        let cpu = |d: &&PathBuf| d.starts_with("/sys/fs/cgroup/cpu");
        let dir = self
            .dirs
            .iter()
            .find(v2)
            .or_else(|| self.dirs.iter().find(cpu))
            .unwrap_or(&self.dirs[0]);
        std::fs::metadata(dir).unwrap().ino()
    }

    fn remove(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        for dir in &self.dirs {
            // The process is gone, so the cgroup is empty and can be removed.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        self.remove();
    }
}

fn containers(agent: &Agent) -> Vec<serde_json::Value> {
    let (status, body) = agent.get("/containers/json").unwrap();
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    reply["data"].as_array().cloned().unwrap_or_default()
}

fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(v) = probe() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn real_cgroup_is_discovered_attributed_and_expires() {
    // Creating cgroups needs root, like BPF.
    if !common::bpf_available("real_cgroup_is_discovered_attributed_and_expires") {
        return;
    }
    let extra =
        "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";
    let agent = Agent::start_with(&["loadavg"], extra);
    let mut container = TestContainer::create().expect("create test cgroup");
    let id = container.id.clone();

    let found = wait_for(Duration::from_secs(5), || {
        containers(&agent)
            .into_iter()
            .find(|c| c["id"] == id.as_str())
    })
    .unwrap_or_else(|| panic!("container {id} not discovered:\n{}", agent.log()));
    assert_eq!(found["runtime"], "docker");
    assert_eq!(found["name"], &id[..12]);
    assert_eq!(found["cgroup_path"], format!("/docker/{id}"));
    assert_eq!(found["init_pid"], container.process.id());
    assert_eq!(
        found["cgroup_id"],
        container.expected_cgroup_id(),
        "{found}"
    );

    // One container by id, and a clear 404 for an unknown one.
    let (status, body) = agent
        .get(&format!("/containers/json?container_id={id}"))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = agent
        .get(&format!("/containers/json?container_id={}", "0".repeat(64)))
        .unwrap();
    assert_eq!(status, 404);

    container.remove();
    let gone = wait_for(Duration::from_secs(5), || {
        (!containers(&agent).iter().any(|c| c["id"] == id.as_str())).then_some(())
    });
    assert!(
        gone.is_some(),
        "container {id} still listed after its cgroup was removed"
    );
}
