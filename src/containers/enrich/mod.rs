//! Optional enrichment of cgroup-discovered containers: pod metadata from the kubelet's `/pods`,
//! names/images from the Docker Engine socket, and names/pods/images from the OCI bundle
//! `config.json` that containerd and CRI-O keep on disk for each running container (no API call).
//! Any source may be absent (a host without Kubernetes, a node without Docker); containers are
//! then named by their short id.

mod bundles;
mod containerd;
mod crio;
pub mod docker;
pub mod kubelet;
pub mod oci;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use bundles::BundleDirs;
pub use kubelet::{apply_kube, KubeContainer, LabelAllowList};
pub use oci::{apply_bundle, parse_oci_config, BundleMeta};

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// How long one request to the kubelet or the Docker Engine may take, connecting included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest reply read from the kubelet or the Docker Engine.
const MAX_BODY: usize = 64 * 1024 * 1024;

// The discovery loop logs a failing source once and compares its messages with the last ones,
// so the calls it makes give their errors as text; the typed errors are the submodules'.

/// GET `path` from the kubelet at `base_url` (`http://host:port`): the body of a 200 reply.
pub async fn get_tcp(base_url: &str, path: &str) -> Result<Vec<u8>, String> {
    kubelet::get(base_url, path)
        .await
        .map_err(|e| e.to_string())
}

/// GET `path` from the Docker Engine on its Unix socket: the body of a 200 reply.
pub async fn get_unix(socket: &Path, path: &str) -> Result<Vec<u8>, String> {
    docker::get(socket, path).await.map_err(|e| e.to_string())
}

/// Parses a kubelet `/pods` reply into container id → pod metadata.
pub fn parse_kubelet_pods(
    body: &[u8],
    allow: &LabelAllowList,
) -> Result<HashMap<String, KubeContainer>, String> {
    kubelet::parse_pods(body, allow).map_err(|e| e.to_string())
}

/// Name, hostname and image from a Docker `inspect` reply.
pub fn parse_docker_inspect(body: &[u8]) -> Result<(String, String, String), String> {
    docker::parse_inspect(body).map_err(|e| e.to_string())
}

/// An error and its causes, outermost first (`error reading a body: connection reset`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
