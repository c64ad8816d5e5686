//! Pod metadata from the kubelet's `GET /pods`: which pod, namespace, QoS class, type and image
//! each container has, and the pod labels/annotations an allow-list lets through. As upstream,
//! the read-only port (plain HTTP) is asked first, then the authenticated HTTPS port with a
//! client certificate (or, beyond upstream, the service-account bearer token); the kubelet's
//! serving certificate is not verified unless a CA file is given.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use super::{error_chain, HTTP_TIMEOUT, MAX_BODY};
use crate::containers::model::{Container, ContainerKind, PodInfo, Qos, Runtime};
use crate::containers::ContainersConfig;

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
    /// The HTTPS client could not be built (its message names the file).
    #[error("{0}")]
    Unusable(String),
    #[error("kubelet client certificate {path}: {reason}")]
    ClientCert { path: String, reason: String },
    #[error("kubelet CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("kubelet token file {}: {source}", path.display())]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    fetch(client()?.get(&url), url).await
}

/// The kubelet's HTTPS port and how to authenticate to it.
struct HttpsKubelet {
    base_url: String,
    /// `Err`: the client certificate or CA file is unusable (reported on every poll).
    client: Result<reqwest::Client, String>,
    /// Bearer token file, when no client certificate is configured.
    token_file: Option<PathBuf>,
}

/// Where this node's pods come from: the read-only port, then the HTTPS one (the last that
/// answered is asked first next time).
pub struct KubeletSource {
    read_only: Option<String>,
    https: Option<HttpsKubelet>,
    prefer_https: bool,
}

impl KubeletSource {
    pub fn new(config: &ContainersConfig) -> Self {
        let https = (!config.kubelet_https_url.is_empty()).then(|| HttpsKubelet {
            base_url: config.kubelet_https_url.trim_end_matches('/').to_string(),
            client: https_client(&config.kubelet_client_cert, &config.kubelet_ca_file)
                .map_err(|e| e.to_string()),
            token_file: (config.kubelet_client_cert.is_empty()
                && !config.kubelet_token_file.as_os_str().is_empty())
            .then(|| config.kubelet_token_file.clone()),
        });
        Self {
            read_only: (!config.kubelet_url.is_empty()).then(|| config.kubelet_url.clone()),
            https,
            prefer_https: false,
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.read_only.is_none() && self.https.is_none()
    }

    /// The body of `GET /pods` from the first port that answers; both errors when none does.
    pub async fn pods(&mut self) -> Result<Vec<u8>, String> {
        let mut errors = Vec::new();
        for https in [self.prefer_https, !self.prefer_https] {
            let result = match (https, &self.read_only, &self.https) {
                (false, Some(base), _) => get(base, "/pods").await,
                (true, _, Some(kubelet)) => kubelet.get("/pods").await,
                _ => continue,
            };
            match result {
                Ok(body) => {
                    self.prefer_https = https;
                    return Ok(body);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(errors.join("; then "))
    }
}

impl HttpsKubelet {
    async fn get(&self, path: &str) -> Result<Vec<u8>, KubeletError> {
        let client = self
            .client
            .as_ref()
            .map_err(|reason| KubeletError::Unusable(reason.clone()))?;
        let url = format!("{}{path}", self.base_url);
        let mut request = client.get(&url);
        if let Some(file) = &self.token_file {
            // Read each time: projected service-account tokens are rotated on disk.
            match std::fs::read_to_string(file) {
                Ok(token) => request = request.bearer_auth(token.trim()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(KubeletError::Token {
                        path: file.clone(),
                        source,
                    })
                }
            }
        }
        fetch(request, url).await
    }
}

/// The HTTPS client: the client certificate when configured, the CA when given (otherwise the
/// kubelet's certificate is accepted as it is, as upstream does).
fn https_client(client_cert: &str, ca_file: &Path) -> Result<reqwest::Client, KubeletError> {
    let mut builder = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .tls_built_in_root_certs(false);
    if !client_cert.is_empty() {
        builder = builder.identity(client_identity(client_cert)?);
    }
    if ca_file.as_os_str().is_empty() {
        builder = builder.danger_accept_invalid_certs(true);
    } else {
        let ca_error = |reason: String| KubeletError::CaFile {
            path: ca_file.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(ca_file).map_err(|e| ca_error(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(error_chain(&e)))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
        // The kubelet's certificate names the node, not 127.0.0.1: check who signed it only.
        builder = builder.danger_accept_invalid_hostnames(true);
    }
    builder.build().map_err(KubeletError::Client)
}

/// `cert.pem` holding certificate and key, or `cert.crt,key.key`.
fn client_identity(spec: &str) -> Result<reqwest::Identity, KubeletError> {
    let cert_error = |reason: String| KubeletError::ClientCert {
        path: spec.to_string(),
        reason,
    };
    let mut pem = Vec::new();
    for file in spec.split(',').map(str::trim) {
        let bytes = std::fs::read(file).map_err(|e| cert_error(format!("{file}: {e}")))?;
        pem.extend_from_slice(&bytes);
        pem.push(b'\n');
    }
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        cert_error(format!(
            "not a PEM certificate and private key: {}",
            error_chain(&e)
        ))
    })
}

/// Sends `request` and reads the body of a 200 reply, at most [`MAX_BODY`] bytes.
async fn fetch(request: reqwest::RequestBuilder, url: String) -> Result<Vec<u8>, KubeletError> {
    let request_failed = |source| KubeletError::Request {
        url: url.clone(),
        source,
    };
    let mut response = request
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
