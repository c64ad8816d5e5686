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

    // Upstream's fields of `internal/pod/container.go` beside ours.
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    assert_eq!(found["net_namespace_inum"], netns, "{found}");
    assert_eq!(found["type"], found["kind"], "{found}");
    assert!(found["labels"]["HostNamespace"].is_string(), "{found}");
    assert!(found["cgroup_css"].is_object(), "{found}");

    // One container by id; an unknown id is an empty list (as upstream), a malformed one a 400.
    let (status, body) = agent
        .get(&format!("/containers/json?container_id={id}"))
        .unwrap();
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, one["data"][0]["id"].as_str()),
        (200, Some(id.as_str())),
        "{body}"
    );
    let (status, body) = agent
        .get(&format!("/containers/json?container_id={}", "0".repeat(64)))
        .unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"data":[]}"#));
    let (status, body) = agent.get("/containers/json?container_id=abc").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("64"), "{body}");

    container.remove();
    let gone = wait_for(Duration::from_secs(5), || {
        (!containers(&agent).iter().any(|c| c["id"] == id.as_str())).then_some(())
    });
    assert!(
        gone.is_some(),
        "container {id} still listed after its cgroup was removed"
    );
}
