//! Pod metadata from the kubelet's read-only `GET /pods`: which pod, namespace, QoS class, type
//! and image each container has, and the pod labels/annotations an allow-list lets through.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::{error_chain, HTTP_TIMEOUT, MAX_BODY};
use crate::containers::model::{Container, ContainerKind, PodInfo, Qos, Runtime};

/// Why the kubelet's pods could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("only http:// URLs are supported, got `{url}`")]
    UnsupportedUrl { url: String },
    #[error("cannot set up an HTTP client: {}", error_chain(.0))]
    Client(#[source] reqwest::Error),
    #[error("GET {url}: {}", describe(.source))]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: HTTP status {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: reply larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("malformed kubelet /pods reply: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// What failed, for people: reqwest's own message repeats the URL and hides the cause.
fn describe(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if error.is_timeout() {
        format!("timed out after {HTTP_TIMEOUT:?}")
    } else if error.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        cause.to_string()
    }
}

/// One client for every poll. Without a connection pool: a connection belongs to the runtime
/// that opened it, and a poll every 10 s gains nothing from keeping one.
fn client() -> Result<&'static reqwest::Client, KubeletError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .pool_max_idle_per_host(0)
        // The kubelet is on this node: never through an HTTP(S)_PROXY of the environment.
        .no_proxy()
        .tls_built_in_root_certs(false)
        .build()
        .map_err(KubeletError::Client)?;
    Ok(CLIENT.get_or_init(|| client))
}

/// GET `path` from the kubelet at `base_url` (`http://host:port`): the body of a 200 reply.
pub async fn get(base_url: &str, path: &str) -> Result<Vec<u8>, KubeletError> {
    let Some(authority) = base_url.strip_prefix("http://") else {
        return Err(KubeletError::UnsupportedUrl {
            url: base_url.to_string(),
        });
    };
    let url = format!("http://{}{path}", authority.trim_end_matches('/'));
    let request_failed = |source| KubeletError::Request {
        url: url.clone(),
        source,
    };
    let mut response = client()?
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(request_failed)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(KubeletError::Status {
            url,
            status: response.status(),
        });
    }
    let too_large = || KubeletError::TooLarge { url: url.clone() };
    if response.content_length().unwrap_or(0) > MAX_BODY as u64 {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_failed)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct PodList {
    items: Vec<Pod>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Pod {
    metadata: PodMeta,
    spec: PodSpec,
    status: PodStatus,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodMeta {
    name: String,
    namespace: String,
    uid: String,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
    owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct OwnerReference {
    kind: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct PodSpec {
    hostname: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodStatus {
    qos_class: String,
    container_statuses: Vec<ContainerStatus>,
    init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(rename = "containerID")]
    container_id: String,
    image: String,
}

/// Pod metadata of one container, from the kubelet.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeContainer {
    pub name: String,
    pub hostname: String,
    pub kind: ContainerKind,
    pub qos: Qos,
    pub runtime: Runtime,
    pub image: String,
    pub pod: PodInfo,
}

/// Which pod labels and annotations are copied into [`PodInfo::labels`].
#[derive(Debug, Clone, Default)]
pub struct LabelAllowList {
    pub labels: Vec<String>,
    pub annotations: Vec<String>,
}

/// Parses a kubelet `/pods` reply into container id → pod metadata.
pub fn parse_pods(
    body: &[u8],
    allow: &LabelAllowList,
) -> Result<HashMap<String, KubeContainer>, KubeletError> {
    let pods: PodList = serde_json::from_slice(body).map_err(KubeletError::Malformed)?;
    let mut out = HashMap::new();
    for pod in pods.items {
        let mut labels: Vec<(String, String)> = allow
            .labels
            .iter()
            .filter_map(|k| pod.metadata.labels.get(k).map(|v| (k.clone(), v.clone())))
            .chain(allow.annotations.iter().filter_map(|k| {
                pod.metadata
                    .annotations
                    .get(k)
                    .map(|v| (k.clone(), v.clone()))
            }))
            .collect();
        labels.sort();
        let info = PodInfo {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            labels,
        };
        let daemonset = pod
            .metadata
            .owner_references
            .first()
            .is_some_and(|o| o.kind == "DaemonSet");
        let static_pod = pod
            .metadata
            .annotations
            .get("kubernetes.io/config.source")
            .is_some_and(|s| s != "api");
        let hostname = if pod.spec.hostname.is_empty() {
            pod.metadata.name.clone()
        } else {
            pod.spec.hostname.clone()
        };
        let statuses = pod
            .status
            .container_statuses
            .iter()
            .chain(pod.status.init_container_statuses.iter());
        for status in statuses {
            let Some((scheme, id)) = status.container_id.split_once("://") else {
                continue;
            };
            let runtime = match scheme {
                "docker" => Runtime::Docker,
                "containerd" => Runtime::Containerd,
                "cri-o" | "crio" => Runtime::Crio,
                _ => Runtime::Unknown,
            };
            let kind = if status.name == "istio-proxy" {
                ContainerKind::Sidecar
            } else if daemonset {
                ContainerKind::Daemonset
            } else if static_pod {
                ContainerKind::Static
            } else {
                ContainerKind::Normal
            };
            out.insert(
                id.to_string(),
                KubeContainer {
                    name: status.name.clone(),
                    hostname: hostname.clone(),
                    kind,
                    qos: Qos::parse(&pod.status.qos_class),
                    runtime,
                    image: status.image.clone(),
                    pod: info.clone(),
                },
            );
        }
    }
    Ok(out)
}

/// Applies kubelet metadata to a container found in cgroupfs.
pub fn apply_kube(container: &mut Container, kube: &KubeContainer) {
    container.name = kube.name.clone();
    container.hostname = kube.hostname.clone();
    container.kind = kube.kind;
    if kube.qos != Qos::Unknown {
        container.qos = kube.qos;
    }
    if kube.runtime != Runtime::Unknown {
        container.runtime = kube.runtime;
    }
    container.image = kube.image.clone();
    container.namespace = kube.pod.namespace.clone();
    container.pod = Some(kube.pod.clone());
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::PODS;
    use super::*;

    #[test]
    fn kubelet_pods_map_to_containers() {
        let allow = LabelAllowList {
            labels: vec!["app".into()],
            annotations: vec!["team".into()],
        };
        let map = parse_pods(PODS.as_bytes(), &allow).unwrap();
        let web = &map["aaaa"];
        assert_eq!((web.name.as_str(), web.hostname.as_str()), ("web", "web-0"));
        assert_eq!(
            (web.qos, web.kind, web.runtime),
            (Qos::Burstable, ContainerKind::Normal, Runtime::Containerd)
        );
        assert_eq!(
            web.pod.labels,
            vec![("app".into(), "web".into()), ("team".into(), "a".into())]
        );
        assert_eq!(map["bbbb"].kind, ContainerKind::Sidecar);
        let agent = &map["cccc"];
        assert_eq!(
            (agent.kind, agent.qos, agent.runtime),
            (ContainerKind::Daemonset, Qos::Besteffort, Runtime::Docker)
        );
        assert_eq!(agent.hostname, "agent");
    }

    #[test]
    fn malformed_kubelet_reply_is_an_error() {
        let err = parse_pods(b"{not json", &LabelAllowList::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("malformed kubelet /pods reply"), "{err}");
    }
}
