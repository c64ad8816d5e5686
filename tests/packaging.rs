//! Packaging: the systemd unit passes `systemd-analyze verify` and stays within its security
//! rating, its directories are where the shipped config puts the socket and the store; the
//! Kubernetes kustomize base renders with `kubectl kustomize` into a DaemonSet whose probes,
//! identity, volumes and ConfigMap fit together, and whose embedded config the agent accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_huatuo-bamai")
}

fn output(command: &mut Command) -> (bool, String, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shipped unit with its binary path pointed at the one just built, as an install would.
fn installed_unit(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("config/huatuo-bamai.service"))
        .expect("config/huatuo-bamai.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/huatuo-bamai "),
        "the unit starts /usr/local/bin/huatuo-bamai, as its install comment says"
    );
    let path = dir.join("huatuo-bamai.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/huatuo-bamai", agent())).expect("unit");
    path
}

#[test]
fn systemd_unit_verifies_and_keeps_its_security_rating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = installed_unit(dir.path());
    let (ok, stdout, stderr) = output(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(ok, "systemd-analyze verify failed:\n{stdout}{stderr}");
    // verify reports unknown keys and bad values as warnings with a zero exit status.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("huatuo-bamai.service"))
        .collect();
    assert!(
        warnings.is_empty(),
        "systemd-analyze verify warns: {warnings:#?}"
    );

    // docs/operations.md quotes the rating (4.6 OK); a change that weakens the sandbox past
    // 5.0 ("MEDIUM") fails here.
    let (ok, stdout, stderr) = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=50", "--no-pager"])
            .arg(&unit),
    );
    let overall = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.contains("Overall exposure level"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(ok, "exposure above 5.0: {overall}\n{stderr}");
    assert!(
        !overall.is_empty(),
        "no overall rating printed:\n{stdout}{stderr}"
    );
}

/// `RuntimeDirectory=`/`StateDirectory=` must hold what the shipped config writes, since
/// `ProtectSystem=strict` makes everything else read-only.
#[test]
fn systemd_unit_directories_hold_the_socket_and_the_store() {
    let unit = std::fs::read_to_string(repo().join("config/huatuo-bamai.service")).expect("unit");
    let key = |name: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("the unit sets no {name}="))
            .trim()
            .to_owned()
    };
    let runtime = format!("/run/{}/", key("RuntimeDirectory"));
    let state = format!("/var/lib/{}/", key("StateDirectory"));
    let config: toml::Value = std::fs::read_to_string(repo().join("config/huatuo-bamai.toml"))
        .expect("config")
        .parse()
        .expect("shipped config is TOML");
    let socket = config["control"]["socket"]
        .as_str()
        .expect("control.socket");
    let store = config["events"]["store_path"]
        .as_str()
        .expect("events.store_path");
    assert!(
        socket.starts_with(&runtime),
        "{socket} is outside {runtime}"
    );
    assert!(store.starts_with(&state), "{store} is outside {state}");
}

/// The base rendered by `kubectl kustomize`, as JSON documents (PyYAML turns the YAML stream
/// into JSON so the checks below read plain values).
fn rendered_base() -> Vec<Value> {
    let (ok, yaml, stderr) = output(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(repo().join("deploy/kubernetes")),
    );
    assert!(ok, "kubectl kustomize deploy/kubernetes failed: {stderr}");
    let mut python = Command::new("python3");
    python.args([
        "-c",
        "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
    ]);
    python
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = python.spawn().expect("python3");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), yaml.as_bytes())
        .expect("write yaml");
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "the rendered YAML does not parse");
    serde_json::from_slice(&out.stdout).expect("json")
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn kustomize_base_renders_a_consistent_daemonset() {
    let docs = rendered_base();
    let ds = find(&docs, "DaemonSet");
    let namespace = ds["metadata"]["namespace"].as_str().expect("namespace");
    assert_eq!(find(&docs, "Namespace")["metadata"]["name"], namespace);
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true, "container processes must be visible");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["privileged"], true);
    assert!(
        container["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("huatuo-bamai:")),
        "image: {}",
        container["image"]
    );
    assert_eq!(container["ports"][0]["containerPort"], 19704);
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], 19704, "{probe}");
    }
    assert!(container["resources"]["limits"]["memory"].is_string());

    // Every mount has its volume; the config volume is the rendered ConfigMap.
    let volumes = pod["volumes"].as_array().expect("volumes");
    for mount in container["volumeMounts"].as_array().expect("mounts") {
        assert!(
            volumes.iter().any(|v| v["name"] == mount["name"]),
            "mount {} has no volume",
            mount["name"]
        );
    }
    let config_map = find(&docs, "ConfigMap");
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"].is_object())
        .expect("a ConfigMap volume");
    assert_eq!(
        config_volume["configMap"]["name"],
        config_map["metadata"]["name"]
    );

    // The pod's identity may ask the kubelet for its pods (`get nodes/proxy`).
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    let sa = find(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], account);
    assert_eq!(sa["metadata"]["namespace"], namespace);
    let binding = find(&docs, "ClusterRoleBinding");
    assert!(binding["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .any(|s| s["name"] == account && s["namespace"] == namespace));
    let role = find(&docs, "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert!(role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .any(|r| r["resources"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == "nodes/proxy"))
            && r["verbs"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x == "get"))));

    // The agent accepts the ConfigMap's configuration as it is.
    let toml_text = config_map["data"]["huatuo-bamai.toml"]
        .as_str()
        .expect("huatuo-bamai.toml in the ConfigMap");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huatuo-bamai.toml");
    std::fs::write(&path, toml_text).expect("write config");
    let (ok, _, stderr) = output(
        Command::new(agent())
            .arg("--config")
            .arg(&path)
            .arg("check-config"),
    );
    assert!(ok, "the ConfigMap's configuration is rejected: {stderr}");
}
