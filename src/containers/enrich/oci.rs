//! OCI runtime bundles: the `config.json` containerd and CRI-O keep on disk for each running
//! container, and what its hostname and annotations say about the container.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::containers::model::{Container, ContainerKind, PodInfo, Runtime};

/// Largest bundle `config.json` read (real ones are a few KiB to a few hundred KiB).
const MAX_BUNDLE_CONFIG: u64 = 16 * 1024 * 1024;

/// A `config.json` that is not an OCI runtime configuration.
#[derive(Debug, thiserror::Error)]
#[error("malformed OCI config.json: {0}")]
pub struct OciConfigError(#[from] serde_json::Error);

/// Why a container's bundle could not be read; each names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_BUNDLE_CONFIG} bytes", .path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: OciConfigError,
    },
}

/// The parts of an OCI runtime `config.json` that name a container.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct OciConfig {
    hostname: String,
    annotations: HashMap<String, String>,
}

/// What a container's OCI bundle tells about it. Empty strings are unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleMeta {
    pub name: String,
    pub hostname: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    pub image: String,
    pub runtime: Runtime,
}

/// The first non-empty annotation among `keys`.
fn annotation(annotations: &HashMap<String, String>, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| annotations.get(*k))
        .find(|v| !v.is_empty())
        .cloned()
        .unwrap_or_default()
}

/// Parses an OCI runtime `config.json`: `hostname` and the annotations containerd's CRI plugin
/// (`io.kubernetes.cri.*`), CRI-O (`io.kubernetes.{container,pod}.*`, `io.kubernetes.cri-o.*`)
/// and nerdctl (`nerdctl/name`) write.
pub fn parse_oci_config(body: &[u8]) -> Result<BundleMeta, OciConfigError> {
    let config: OciConfig = serde_json::from_slice(body)?;
    let a = &config.annotations;
    Ok(BundleMeta {
        name: annotation(
            a,
            &[
                "io.kubernetes.cri.container-name",
                "io.kubernetes.container.name",
                "nerdctl/name",
            ],
        ),
        hostname: config.hostname.clone(),
        pod_name: annotation(
            a,
            &["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"],
        ),
        pod_namespace: annotation(
            a,
            &[
                "io.kubernetes.cri.sandbox-namespace",
                "io.kubernetes.pod.namespace",
            ],
        ),
        pod_uid: annotation(
            a,
            &["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"],
        ),
        image: annotation(
            a,
            &[
                "io.kubernetes.cri.image-name",
                "io.kubernetes.cri-o.ImageName",
            ],
        ),
        runtime: Runtime::Unknown,
    })
}

/// Reads and parses one bundle `config.json`; `Ok(None)` when it does not exist.
pub(super) fn read_bundle(path: &Path) -> Result<Option<BundleMeta>, BundleError> {
    use std::io::Read;
    let read_failed = |source| BundleError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_failed(e)),
    };
    let mut body = Vec::new();
    file.take(MAX_BUNDLE_CONFIG + 1)
        .read_to_end(&mut body)
        .map_err(read_failed)?;
    if body.len() as u64 > MAX_BUNDLE_CONFIG {
        return Err(BundleError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    parse_oci_config(&body)
        .map(Some)
        .map_err(|source| BundleError::Malformed {
            path: path.to_path_buf(),
            source,
        })
}

/// Applies bundle metadata to a container found in cgroupfs (for containers the kubelet does not
/// describe): only what the bundle knows replaces the cgroup-derived values.
pub fn apply_bundle(container: &mut Container, meta: &BundleMeta) {
    if !meta.name.is_empty() {
        container.name = meta.name.clone();
        if meta.name == "istio-proxy" {
            container.kind = ContainerKind::Sidecar;
        }
    }
    if !meta.hostname.is_empty() {
        container.hostname = meta.hostname.clone();
    } else if !meta.pod_name.is_empty() {
        // As the kubelet source: a pod without spec.hostname is reached by its name.
        container.hostname = meta.pod_name.clone();
    }
    if !meta.image.is_empty() {
        container.image = meta.image.clone();
    }
    if meta.runtime != Runtime::Unknown {
        container.runtime = meta.runtime;
    }
    if !meta.pod_namespace.is_empty() {
        container.namespace = meta.pod_namespace.clone();
    }
    if !meta.pod_name.is_empty() {
        let uid = if meta.pod_uid.is_empty() {
            crate::containers::cgroupfs::parse_kube_path(&container.cgroup_path)
                .1
                .unwrap_or_default()
        } else {
            meta.pod_uid.clone()
        };
        container.pod = Some(PodInfo {
            name: meta.pod_name.clone(),
            namespace: meta.pod_namespace.clone(),
            uid,
            labels: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::containers::model::Qos;

    #[test]
    fn oci_configs_of_every_runtime_name_containers() {
        let meta = parse_oci_config(containerd_cri_config().as_bytes()).unwrap();
        assert_eq!(
            meta,
            BundleMeta {
                name: "web".into(),
                hostname: "web-0".into(),
                pod_name: "web-0".into(),
                pod_namespace: "shop".into(),
                pod_uid: POD_UID.into(),
                image: "docker.io/library/nginx:1.25.3".into(),
                runtime: Runtime::Unknown,
            }
        );
        let meta = parse_oci_config(crio_config().as_bytes()).unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.hostname.as_str(),
                meta.pod_name.as_str(),
                meta.pod_namespace.as_str(),
                meta.image.as_str()
            ),
            ("api", "", "api-7d9f", "prod", "quay.io/acme/api:2.4")
        );
        assert_eq!(meta.pod_uid, "66666666-7777-8888-9999-000000000000");
        let nerdctl = oci_config("e7d000012345", &[("nerdctl/name", "redis")], "");
        let meta = parse_oci_config(nerdctl.as_bytes()).unwrap();
        assert_eq!((meta.name.as_str(), meta.pod_name.as_str()), ("redis", ""));
        // A bundle without hostname or annotations parses to nothing known.
        let meta = parse_oci_config(br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#).unwrap();
        assert!(meta.name.is_empty() && meta.hostname.is_empty() && meta.image.is_empty());
        let err = parse_oci_config(b"{\"ociVersion\": \"1.1.0\", \"hostname\": ")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("malformed OCI config.json"), "{err}");
        assert!(parse_oci_config(br#"{"annotations": ["not", "a", "map"]}"#).is_err());
    }

    #[test]
    fn bundle_metadata_fills_only_what_it_knows() {
        let path = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-{CTR_ID}.scope"
        );
        let mut container =
            Container::from_cgroup(CTR_ID, 7, &path, Runtime::Containerd, Qos::Besteffort);
        let mut meta = parse_oci_config(containerd_cri_config().as_bytes()).unwrap();
        meta.runtime = Runtime::Containerd;
        meta.pod_uid.clear(); // older containerd: the uid comes from the cgroup path
        apply_bundle(&mut container, &meta);
        assert_eq!(
            container.labels(),
            vec![
                ("container_host", "web-0".to_string()),
                ("container_name", "web".to_string()),
                ("container_type", "normal".to_string()),
                ("container_level", "besteffort".to_string()),
                ("container_hostnamespace", "shop".to_string()),
            ]
        );
        assert_eq!(container.image, "docker.io/library/nginx:1.25.3");
        assert_eq!(
            container.pod,
            Some(PodInfo {
                name: "web-0".into(),
                namespace: "shop".into(),
                uid: POD_UID.into(),
                labels: Vec::new(),
            })
        );

        // CRI-O without hostname: the pod name, as the kubelet source does.
        let mut container =
            Container::from_cgroup(CRIO_ID, 8, "/x", Runtime::Unknown, Qos::Burstable);
        let mut meta = parse_oci_config(crio_config().as_bytes()).unwrap();
        meta.runtime = Runtime::Crio;
        apply_bundle(&mut container, &meta);
        assert_eq!(
            (
                container.name.as_str(),
                container.hostname.as_str(),
                container.runtime
            ),
            ("api", "api-7d9f", Runtime::Crio)
        );

        // Docker's bundle knows only the hostname: the short-id name stays.
        let mut container =
            Container::from_cgroup(MOBY_ID, 9, "/docker/x", Runtime::Docker, Qos::Unknown);
        let meta = BundleMeta {
            name: String::new(),
            hostname: "webhost".into(),
            pod_name: String::new(),
            pod_namespace: String::new(),
            pod_uid: String::new(),
            image: String::new(),
            runtime: Runtime::Docker,
        };
        apply_bundle(&mut container, &meta);
        assert_eq!(
            (
                container.name.as_str(),
                container.hostname.as_str(),
                container.pod.is_none()
            ),
            ("d0cce7012345", "webhost", true)
        );
        let mut sidecar =
            Container::from_cgroup(CTR_ID, 10, "/y", Runtime::Containerd, Qos::Unknown);
        apply_bundle(
            &mut sidecar,
            &BundleMeta {
                name: "istio-proxy".into(),
                ..meta
            },
        );
        assert_eq!(sidecar.kind, ContainerKind::Sidecar);
    }
}
