//! Optional enrichment of cgroup-discovered containers: pod metadata from the kubelet's `/pods`
//! and names/images from the Docker Engine socket. Either source may be absent (a host without
//! Kubernetes, a containerd-only node); containers are then named by their short id.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::model::{Container, ContainerKind, PodInfo, Qos, Runtime};

const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BODY: usize = 64 * 1024 * 1024;

/// GET `path` over an established stream; returns the body of a 200 reply.
async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
) -> Result<Vec<u8>, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_BODY as u64)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP reply (no header end)")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP status {status} for {path}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body);
    }
    Ok(body.to_vec())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("malformed chunked body")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".to_string());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

/// GET over TCP (`http://host:port` base URL).
pub async fn get_tcp(base_url: &str, path: &str) -> Result<Vec<u8>, String> {
    let authority = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported, got `{base_url}`"))?
        .trim_end_matches('/');
    let fut = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        http_get(stream, authority, path).await
    };
    tokio::time::timeout(HTTP_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{base_url}{path}: timed out"))?
}

/// GET over a Unix socket (Docker Engine API).
pub async fn get_unix(socket: &std::path::Path, path: &str) -> Result<Vec<u8>, String> {
    let fut = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connect {}: {e}", socket.display()))?;
        http_get(stream, "localhost", path).await
    };
    tokio::time::timeout(HTTP_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{}{path}: timed out", socket.display()))?
}

// ---- kubelet /pods ----

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
pub fn parse_kubelet_pods(
    body: &[u8],
    allow: &LabelAllowList,
) -> Result<HashMap<String, KubeContainer>, String> {
    let pods: PodList =
        serde_json::from_slice(body).map_err(|e| format!("malformed kubelet /pods reply: {e}"))?;
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

// ---- Docker Engine /containers/<id>/json ----

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct DockerInspect {
    name: String,
    config: DockerConfig,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct DockerConfig {
    hostname: String,
    image: String,
}

/// Name, hostname and image from a Docker `inspect` reply.
pub fn parse_docker_inspect(body: &[u8]) -> Result<(String, String, String), String> {
    let inspect: DockerInspect =
        serde_json::from_slice(body).map_err(|e| format!("malformed docker inspect reply: {e}"))?;
    Ok((
        inspect.name.trim_start_matches('/').to_string(),
        inspect.config.hostname,
        inspect.config.image,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODS: &str = r#"{"items":[{"metadata":{"name":"web-0","namespace":"shop","uid":"u-1",
        "labels":{"app":"web","secret":"x"},"annotations":{"team":"a"},
        "ownerReferences":[{"kind":"StatefulSet"}]},
      "spec":{"hostname":""},
      "status":{"qosClass":"Burstable","containerStatuses":[
        {"name":"web","containerID":"containerd://aaaa","image":"nginx:1"},
        {"name":"istio-proxy","containerID":"containerd://bbbb","image":"istio"}]}},
     {"metadata":{"name":"agent-x","namespace":"kube-system","uid":"u-2","ownerReferences":[{"kind":"DaemonSet"}]},
      "spec":{"hostname":"agent"},
      "status":{"qosClass":"BestEffort","containerStatuses":[{"name":"agent","containerID":"docker://cccc"}]}}]}"#;

    #[test]
    fn kubelet_pods_map_to_containers() {
        let allow = LabelAllowList {
            labels: vec!["app".into()],
            annotations: vec!["team".into()],
        };
        let map = parse_kubelet_pods(PODS.as_bytes(), &allow).unwrap();
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
        let err = parse_kubelet_pods(b"{not json", &LabelAllowList::default()).unwrap_err();
        assert!(err.contains("malformed kubelet /pods reply"), "{err}");
    }

    #[test]
    fn docker_inspect_names() {
        let body = br#"{"Name":"/redis","Config":{"Hostname":"c0ffee","Image":"redis:7"}}"#;
        assert_eq!(
            parse_docker_inspect(body).unwrap(),
            ("redis".into(), "c0ffee".into(), "redis:7".into())
        );
    }

    #[test]
    fn dechunks_bodies() {
        assert_eq!(
            dechunk(b"4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n").unwrap(),
            b"abcdef"
        );
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[tokio::test]
    async fn fetches_over_tcp_and_unix_sockets() {
        use tokio::io::AsyncWriteExt;
        async fn serve_once<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
            mut s: S,
            body: &'static str,
        ) {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
        }
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = tcp.accept().await.unwrap();
            serve_once(s, "{\"items\":[]}").await;
        });
        assert_eq!(
            get_tcp(&format!("http://{addr}"), "/pods").await.unwrap(),
            b"{\"items\":[]}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let unix = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (s, _) = unix.accept().await.unwrap();
            serve_once(s, "{}").await;
        });
        assert_eq!(get_unix(&path, "/containers/x/json").await.unwrap(), b"{}");
        assert!(get_tcp("http://127.0.0.1:1", "/pods").await.is_err());
    }
}
