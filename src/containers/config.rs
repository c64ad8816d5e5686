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
    /// Pod name, namespace, QoS from the kubelet's read-only port (`GET /pods` over plain
    /// HTTP); "" disables it. Asked first, as upstream.
    pub kubelet_url: String,
    /// The kubelet's authenticated HTTPS port, asked when the read-only one fails (most
    /// clusters close it); "" disables it. Authenticates with `kubelet_client_cert` or, without
    /// one, the bearer token in `kubelet_token_file`.
    pub kubelet_https_url: String,
    /// Client certificate and key for `kubelet_https_url`: one PEM file holding both
    /// (kubelet-client-current.pem) or "cert.crt,key.key", as upstream's KubeletClientCertPath;
    /// "" uses the token instead.
    pub kubelet_client_cert: String,
    /// Service-account token sent as `Authorization: Bearer` when there is no client
    /// certificate (the pod's own token in a DaemonSet); skipped when the file does not exist.
    pub kubelet_token_file: PathBuf,
    /// CA bundle (PEM) that must have signed the kubelet's serving certificate; "" skips the
    /// verification as upstream does (kubelets mostly serve self-signed certificates).
    pub kubelet_ca_file: PathBuf,
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
            kubelet_https_url: "https://127.0.0.1:10250".to_string(),
            kubelet_client_cert: String::new(),
            kubelet_token_file: PathBuf::from(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ),
            kubelet_ca_file: PathBuf::new(),
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
                format!("`{url}`: the read-only port speaks http://; put an https:// kubelet in kubelet_https_url; empty disables it"),
            ));
        }
        let url = &self.kubelet_https_url;
        if !url.is_empty() && !url.starts_with("https://") {
            return Err(Invalid::field(
                "kubelet_https_url",
                format!("`{url}` is not an https:// URL; empty disables it"),
            ));
        }
        if self.kubelet_client_cert.split(',').count() > 2 {
            return Err(Invalid::field(
                "kubelet_client_cert",
                "one PEM file, or \"cert,key\" (two files)",
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
