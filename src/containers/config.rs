//! `[containers]`: container discovery and where its names and pod metadata come from.

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::config::template::Override;
use crate::config::{Invalid, Live, Section};

use super::model::ContainerKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Container discovery from cgroupfs (v1 and v2, cgroupfs and systemd drivers), keyed by cgroup
/// id. Works without Kubernetes.
pub struct ContainersConfig {
    /// Discover containers (needed for every `*_container_*` metric).
    pub enabled: bool,
    /// How often cgroupfs is rescanned for new and removed containers.
    pub rescan_interval_ms: u64,
    /// Pod name, namespace, QoS from the kubelet read-only API; "" disables it.
    pub kubelet_url: String,
    /// Container names and images from the Docker Engine; "" disables it.
    pub docker_socket: PathBuf,
    /// containerd task state: names, pods, images from <dir>/<namespace>/<id>/config.json (OCI bundle
    /// annotations: CRI, nerdctl) where the kubelet gives nothing; "" disables it.
    pub containerd_state_dir: PathBuf,
    /// CRI-O container storage: the same from <dir>/<id>/userdata/config.json; "" disables it.
    pub crio_storage_dir: PathBuf,
    /// Pod label keys copied into the container record (GET /containers/json).
    pub pod_labels: Vec<String>,
    /// Pod annotation keys copied into the container record.
    pub pod_annotations: Vec<String>,
    /// `container_type`s whose containers get series in every per-container family, beyond
    /// upstream's choice (`normal` everywhere, also `sidecar` in cpu_util/cpu_stat/loadavg,
    /// every type in iolatency): any of "sidecar", "daemonSet", "node", "unknown".
    pub also_export_types: Vec<ContainerKind>,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rescan_interval_ms: 2000,
            kubelet_url: "http://127.0.0.1:10255".to_string(),
            docker_socket: PathBuf::from("/var/run/docker.sock"),
            containerd_state_dir: PathBuf::from("/run/containerd/io.containerd.runtime.v2.task"),
            crio_storage_dir: PathBuf::from("/run/containers/storage/overlay-containers"),
            pod_labels: Vec::new(),
            pod_annotations: Vec::new(),
            also_export_types: Vec::new(),
        }
    }
}

impl Section for ContainersConfig {
    const PATH: &'static str = "containers";
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        if self.rescan_interval_ms < 100 {
            return Err(Invalid::field("rescan_interval_ms", "must be at least 100"));
        }
        let url = &self.kubelet_url;
        if !url.is_empty() && !url.starts_with("http://") {
            return Err(Invalid::field(
                "kubelet_url",
                format!("`{url}`: only http:// (the kubelet read-only port) is supported; empty disables it"),
            ));
        }
        Ok(())
    }
}

/// Where deploy/kubernetes/daemonset.yaml mounts the host's /var/run (at /host/var/run): the
/// values of the ConfigMap's `[containers]` paths (`huatuo-bamai config default --daemonset`).
pub const DAEMONSET_PATHS: [Override; 3] = [
    Override {
        key: "containers.docker_socket",
        value: "/host/var/run/docker.sock",
        comment: "In the DaemonSet the host's /var/run is mounted at /host/var/run.",
    },
    Override {
        key: "containers.containerd_state_dir",
        value: "/host/var/run/containerd/io.containerd.runtime.v2.task",
        comment: "Through the same /host/var/run mount.",
    },
    Override {
        key: "containers.crio_storage_dir",
        value: "/host/var/run/containers/storage/overlay-containers",
        comment: "Through the same /host/var/run mount.",
    },
];
