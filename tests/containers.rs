//! Container discovery against the real cgroupfs of this host: a cgroup created by the test with
//! a process in it and a container-style name is discovered (keyed by its cgroup id), attributed,
//! and expires when removed.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, TestContainer};

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
    let agent = Agent::start_with(&["loadavg", "memory_vmstat", "cpu_stat"], extra);
    let mut container = TestContainer::create().expect("create test cgroup");
    let pid = container.spawn(std::process::Command::new("sleep").arg("120"));
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
    assert_eq!(found["init_pid"], pid);
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
