//! Optional enrichment of cgroup-discovered containers: pod metadata from the kubelet's `/pods`,
//! names/images from the Docker Engine socket, and names/pods/images from the OCI bundle
//! `config.json` that containerd and CRI-O keep on disk for each running container (no API call).
//! Any source may be absent (a host without Kubernetes, a node without Docker); containers are
//! then named by their short id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

pub(crate) fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
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

// ---- OCI bundles of containerd and CRI-O ----

/// Largest bundle `config.json` read (real ones are a few KiB to a few hundred KiB).
const MAX_BUNDLE_CONFIG: u64 = 16 * 1024 * 1024;

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
pub fn parse_oci_config(body: &[u8]) -> Result<BundleMeta, String> {
    let config: OciConfig =
        serde_json::from_slice(body).map_err(|e| format!("malformed OCI config.json: {e}"))?;
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

/// Where containerd and CRI-O keep the OCI bundles of running containers; an empty path
/// disables that runtime.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleDirs {
    /// containerd's task state, `<dir>/<namespace>/<id>/config.json`.
    pub containerd_state_dir: PathBuf,
    /// CRI-O's container storage, `<dir>/<id>/userdata/config.json`.
    pub crio_storage_dir: PathBuf,
}

impl BundleDirs {
    pub fn is_disabled(&self) -> bool {
        self.containerd_state_dir.as_os_str().is_empty()
            && self.crio_storage_dir.as_os_str().is_empty()
    }

    /// containerd's namespaces (`k8s.io`, `moby`, `default` ...): the subdirectories of its
    /// state dir, sorted; none when the directory does not exist (no containerd here).
    fn containerd_namespaces(&self) -> Result<Vec<PathBuf>, String> {
        let dir = &self.containerd_state_dir;
        if dir.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut namespaces: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        namespaces.sort();
        Ok(namespaces)
    }

    /// Looks up the bundles of `ids` (64-hex container ids from cgroupfs, so safe in paths):
    /// per id, `Ok(None)` when no runtime has it, or the error of a bundle that cannot be read.
    pub fn lookup(&self, ids: &[String]) -> Vec<(String, Result<Option<BundleMeta>, String>)> {
        let namespaces = self.containerd_namespaces();
        ids.iter()
            .map(|id| {
                let found = namespaces
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|namespaces| self.find(namespaces, id));
                (id.clone(), found)
            })
            .collect()
    }

    fn find(&self, namespaces: &[PathBuf], id: &str) -> Result<Option<BundleMeta>, String> {
        for namespace in namespaces {
            let path = namespace.join(id).join("config.json");
            if let Some(mut meta) = read_bundle(&path)? {
                // Docker runs its containers in containerd's `moby` namespace.
                meta.runtime = if namespace.file_name().is_some_and(|n| n == "moby") {
                    Runtime::Docker
                } else {
                    Runtime::Containerd
                };
                return Ok(Some(meta));
            }
        }
        if !self.crio_storage_dir.as_os_str().is_empty() {
            let path = self.crio_storage_dir.join(id).join("userdata/config.json");
            if let Some(mut meta) = read_bundle(&path)? {
                meta.runtime = Runtime::Crio;
                return Ok(Some(meta));
            }
        }
        Ok(None)
    }
}

/// Reads and parses one bundle `config.json`; `Ok(None)` when it does not exist.
fn read_bundle(path: &Path) -> Result<Option<BundleMeta>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut body = Vec::new();
    file.take(MAX_BUNDLE_CONFIG + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if body.len() as u64 > MAX_BUNDLE_CONFIG {
        return Err(format!(
            "{}: larger than {MAX_BUNDLE_CONFIG} bytes",
            path.display()
        ));
    }
    parse_oci_config(&body)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
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
            super::cgroupfs::parse_kube_path(&container.cgroup_path)
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

    // ---- OCI bundles ----

    const CTR_ID: &str = "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    const SANDBOX_ID: &str = "5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c5a4db0c0";
    const CRIO_ID: &str = "c210cc0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    const MOBY_ID: &str = "d0cce70123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    const NERD_ID: &str = "e7d0000123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    const POD_UID: &str = "11111111-2222-3333-4444-555555555555";

    /// An OCI runtime `config.json` as runc receives it (structure of the OCI runtime spec,
    /// config.md: process, root, hostname, mounts, annotations, linux).
    fn oci_config(hostname: &str, annotations: &[(&str, &str)], cgroups_path: &str) -> String {
        let annotations: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {
                "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
                "args": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
                "env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOSTNAME=web-0",
                    "NGINX_VERSION=1.25.3"
                ],
                "cwd": "/",
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
                    "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
                    "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"]
                },
                "noNewPrivileges": false,
                "apparmorProfile": "cri-containerd.apparmor.d",
                "oomScoreAdj": 1000
            },
            "root": {"path": "rootfs"},
            "hostname": hostname,
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc",
                 "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/etc/hostname", "type": "bind",
                 "source": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/5a4db0c/hostname",
                 "options": ["rbind", "rprivate", "rw"]}
            ],
            "annotations": annotations,
            "linux": {
                "resources": {
                    "devices": [{"allow": false, "access": "rwm"}],
                    "memory": {"limit": 134217728},
                    "cpu": {"shares": 2, "quota": 50000, "period": 100000}
                },
                "cgroupsPath": cgroups_path,
                "namespaces": [
                    {"type": "pid"},
                    {"type": "ipc", "path": "/proc/4343/ns/ipc"},
                    {"type": "uts", "path": "/proc/4343/ns/uts"},
                    {"type": "mount"},
                    {"type": "network", "path": "/proc/4343/ns/net"}
                ],
                "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/sys"]
            }
        })
        .to_string()
    }

    fn containerd_cri_config() -> String {
        oci_config(
            "web-0",
            &[
                ("io.kubernetes.cri.container-name", "web"),
                ("io.kubernetes.cri.container-type", "container"),
                ("io.kubernetes.cri.image-name", "docker.io/library/nginx:1.25.3"),
                ("io.kubernetes.cri.sandbox-id", SANDBOX_ID),
                ("io.kubernetes.cri.sandbox-name", "web-0"),
                ("io.kubernetes.cri.sandbox-namespace", "shop"),
                ("io.kubernetes.cri.sandbox-uid", POD_UID),
            ],
            &format!("kubepods-besteffort-pod11111111_2222_3333_4444_555555555555.slice:cri-containerd:{CTR_ID}"),
        )
    }

    fn crio_config() -> String {
        oci_config(
            "",
            &[
                ("io.container.manager", "cri-o"),
                ("io.kubernetes.container.hash", "4a5c2b1d"),
                ("io.kubernetes.container.name", "api"),
                ("io.kubernetes.cri-o.ContainerID", CRIO_ID),
                ("io.kubernetes.cri-o.ContainerType", "container"),
                ("io.kubernetes.cri-o.ImageName", "quay.io/acme/api:2.4"),
                (
                    "io.kubernetes.cri-o.Name",
                    "k8s_api_api-7d9f_prod_66666666-7777-8888-9999-000000000000_0",
                ),
                ("io.kubernetes.pod.name", "api-7d9f"),
                ("io.kubernetes.pod.namespace", "prod"),
                (
                    "io.kubernetes.pod.uid",
                    "66666666-7777-8888-9999-000000000000",
                ),
            ],
            &format!(
                "kubepods-burstable-pod66666666_7777_8888_9999_000000000000.slice:crio:{CRIO_ID}"
            ),
        )
    }

    fn write(path: &Path, body: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// containerd state (k8s.io, moby, default namespaces) and CRI-O storage under `root`.
    fn bundle_tree(root: &Path) -> BundleDirs {
        let dirs = BundleDirs {
            containerd_state_dir: root.join("run/containerd/io.containerd.runtime.v2.task"),
            crio_storage_dir: root.join("run/containers/storage/overlay-containers"),
        };
        let ctrd = &dirs.containerd_state_dir;
        write(
            &ctrd.join("k8s.io").join(CTR_ID).join("config.json"),
            &containerd_cri_config(),
        );
        std::fs::write(ctrd.join("k8s.io").join(CTR_ID).join("init.pid"), "4343").unwrap();
        write(
            &ctrd.join("k8s.io").join(SANDBOX_ID).join("config.json"),
            &oci_config(
                "web-0",
                &[
                    ("io.kubernetes.cri.container-type", "sandbox"),
                    ("io.kubernetes.cri.sandbox-id", SANDBOX_ID),
                    ("io.kubernetes.cri.sandbox-name", "web-0"),
                    ("io.kubernetes.cri.sandbox-namespace", "shop"),
                ],
                "",
            ),
        );
        write(
            &ctrd.join("moby").join(MOBY_ID).join("config.json"),
            &oci_config("d0cce7012345", &[], &format!("/docker/{MOBY_ID}")),
        );
        write(
            &ctrd.join("default").join(NERD_ID).join("config.json"),
            &oci_config(
                "e7d000012345",
                &[
                    ("nerdctl/name", "redis"),
                    ("nerdctl/namespace", "default"),
                    ("nerdctl/platform", "linux/amd64"),
                ],
                &format!("/default/{NERD_ID}"),
            ),
        );
        write(
            &dirs
                .crio_storage_dir
                .join(CRIO_ID)
                .join("userdata/config.json"),
            &crio_config(),
        );
        dirs
    }

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
        let err = parse_oci_config(b"{\"ociVersion\": \"1.1.0\", \"hostname\": ").unwrap_err();
        assert!(err.starts_with("malformed OCI config.json"), "{err}");
        assert!(parse_oci_config(br#"{"annotations": ["not", "a", "map"]}"#).is_err());
    }

    #[test]
    fn bundles_are_found_in_every_namespace_and_in_crio_storage() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = bundle_tree(dir.path());
        let missing = "f".repeat(64);
        let ids: Vec<String> = [CTR_ID, MOBY_ID, NERD_ID, CRIO_ID, SANDBOX_ID, &missing]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let found: HashMap<String, Option<BundleMeta>> = dirs
            .lookup(&ids)
            .into_iter()
            .map(|(id, r)| (id, r.unwrap()))
            .collect();
        let summary = |id: &str| {
            found[id]
                .as_ref()
                .map(|m| (m.name.clone(), m.hostname.clone(), m.runtime))
        };
        assert_eq!(
            summary(CTR_ID),
            Some(("web".into(), "web-0".into(), Runtime::Containerd))
        );
        assert_eq!(
            summary(MOBY_ID),
            Some(("".into(), "d0cce7012345".into(), Runtime::Docker))
        );
        assert_eq!(
            summary(NERD_ID),
            Some(("redis".into(), "e7d000012345".into(), Runtime::Containerd))
        );
        assert_eq!(
            summary(CRIO_ID),
            Some(("api".into(), "".into(), Runtime::Crio))
        );
        assert_eq!(
            summary(SANDBOX_ID),
            Some(("".into(), "web-0".into(), Runtime::Containerd))
        );
        assert_eq!(found[&missing], None);

        // Runtimes that are not installed, or disabled, find nothing and fail nothing.
        for dirs in [
            BundleDirs {
                containerd_state_dir: dir.path().join("nope"),
                crio_storage_dir: dir.path().join("nope2"),
            },
            BundleDirs::default(),
        ] {
            assert!(dirs
                .lookup(&[CTR_ID.to_string()])
                .into_iter()
                .all(|(_, r)| r == Ok(None)));
        }
        assert!(BundleDirs::default().is_disabled());
        assert!(!dirs.is_disabled());
    }

    #[test]
    fn unreadable_bundles_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = bundle_tree(dir.path());
        let path = dirs
            .crio_storage_dir
            .join(CRIO_ID)
            .join("userdata/config.json");
        std::fs::write(&path, "{\"ociVersion\": \"1.1.0\", \"annot").unwrap();
        let ids = [CRIO_ID.to_string(), CTR_ID.to_string()];
        let results = dirs.lookup(&ids);
        let err = results[0].1.clone().unwrap_err();
        assert!(
            err.starts_with(&path.display().to_string())
                && err.contains("malformed OCI config.json"),
            "{err}"
        );
        // The other container is still found.
        assert_eq!(results[1].1.clone().unwrap().unwrap().name, "web");
        // A directory where config.json should be: a read error, not a panic.
        let bad = dirs
            .crio_storage_dir
            .join(CRIO_ID)
            .join("userdata/config.json");
        std::fs::remove_file(&bad).unwrap();
        std::fs::create_dir(&bad).unwrap();
        assert!(dirs.lookup(&ids)[0].1.is_err());
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

    /// A cgroup v2 tree (systemd driver) with a containerd pod container, a CRI-O container, a
    /// Docker container and a containerd container without bundle, plus their bundles.
    fn discovery_tree(root: &Path) -> (crate::containers::ContainersConfig, Vec<PathBuf>) {
        let cgroup = root.join("sys/fs/cgroup");
        write(
            &cgroup.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        );
        let pod = cgroup.join("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod11111111_2222_3333_4444_555555555555.slice");
        let no_bundle = "ab".repeat(32);
        let scopes = vec![
            pod.join(format!("cri-containerd-{CTR_ID}.scope")),
            cgroup.join(format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod66666666_7777_8888_9999_000000000000.slice/crio-{CRIO_ID}.scope"
            )),
            cgroup.join(format!("system.slice/docker-{MOBY_ID}.scope")),
            pod.join(format!("cri-containerd-{no_bundle}.scope")),
        ];
        for (i, scope) in scopes.iter().enumerate() {
            write(&scope.join("cgroup.procs"), &format!("{}\n", 4343 + i));
        }
        let dirs = bundle_tree(root);
        let config = crate::containers::ContainersConfig {
            kubelet_url: String::new(),
            docker_socket: PathBuf::new(),
            containerd_state_dir: dirs.containerd_state_dir,
            crio_storage_dir: dirs.crio_storage_dir,
            ..Default::default()
        };
        (config, scopes)
    }

    fn names(set: &super::super::ContainerSet) -> Vec<(String, String, String, &'static str)> {
        set.iter()
            .map(|c| {
                (
                    c.id[..6].to_string(),
                    c.name.clone(),
                    c.namespace.clone(),
                    c.runtime.as_str(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn discovery_names_containers_from_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let (config, scopes) = discovery_tree(dir.path());
        let mut discovery = super::super::Discovery::new(&dir.path().join("sys"), &config);
        let set = discovery.discover().await;
        assert_eq!(
            names(&set),
            vec![
                (
                    "ababab".into(),
                    "abababababab".into(),
                    "".into(),
                    "containerd"
                ),
                ("c0ffee".into(), "web".into(), "shop".into(), "containerd"),
                ("c210cc".into(), "api".into(), "prod".into(), "crio"),
                ("d0cce7".into(), "d0cce7012345".into(), "".into(), "docker"),
            ]
        );
        let web = set.by_id(CTR_ID).unwrap();
        assert_eq!(web.hostname, "web-0");
        assert_eq!(web.image, "docker.io/library/nginx:1.25.3");
        assert_eq!(web.qos, Qos::Besteffort);
        assert_eq!(web.pod.as_ref().unwrap().uid, POD_UID);
        assert_eq!(discovery.bundles.len(), 4);
        assert_eq!(discovery.bundles[&"ab".repeat(32)], None);

        // Cached: a bundle changed on disk is not re-read while the container lives ...
        let bundle = config
            .containerd_state_dir
            .join("k8s.io")
            .join(CTR_ID)
            .join("config.json");
        std::fs::write(
            &bundle,
            containerd_cri_config().replace("\"web\"", "\"renamed\""),
        )
        .unwrap();
        assert_eq!(
            discovery.discover().await.by_id(CTR_ID).unwrap().name,
            "web"
        );
        // ... and forgotten when it is gone.
        std::fs::remove_file(scopes[0].join("cgroup.procs")).unwrap();
        std::fs::remove_dir(&scopes[0]).unwrap();
        let set = discovery.discover().await;
        assert!(set.by_id(CTR_ID).is_none());
        assert!(!discovery.bundles.contains_key(CTR_ID));
        assert_eq!(discovery.bundles.len(), 3);
    }

    #[tokio::test]
    async fn kubelet_metadata_wins_over_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let (config, _) = discovery_tree(dir.path());
        let mut discovery = super::super::Discovery::new(&dir.path().join("sys"), &config);
        let pods = PODS.replace("containerd://aaaa", &format!("containerd://{CTR_ID}"));
        discovery.kube = parse_kubelet_pods(pods.as_bytes(), &LabelAllowList::default()).unwrap();
        let set = discovery.discover().await;
        let web = set.by_id(CTR_ID).unwrap();
        assert_eq!(
            (
                web.name.as_str(),
                web.hostname.as_str(),
                web.namespace.as_str()
            ),
            ("web", "web-0", "shop")
        );
        assert_eq!(
            web.image, "nginx:1",
            "the kubelet's image, not the bundle's"
        );
        assert_eq!(web.qos, Qos::Burstable, "the kubelet's QoS class");
        // The bundle of a container the kubelet describes is not even read.
        assert!(!discovery.bundles.contains_key(CTR_ID));
        assert_eq!(set.by_id(CRIO_ID).unwrap().name, "api");

        // Disabled: no bundle is read, containers keep their short ids.
        let disabled = crate::containers::ContainersConfig {
            containerd_state_dir: PathBuf::new(),
            crio_storage_dir: PathBuf::new(),
            ..config
        };
        let mut discovery = super::super::Discovery::new(&dir.path().join("sys"), &disabled);
        let set = discovery.discover().await;
        assert_eq!(set.by_id(CRIO_ID).unwrap().name, "c210cc012345");
        assert!(discovery.bundles.is_empty());
    }
}
