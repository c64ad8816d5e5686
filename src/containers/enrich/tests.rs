//! Tests of the HTTP fetches and of discovery rounds that combine the sources.

use std::path::{Path, PathBuf};

use super::fixtures::*;
use super::*;
use crate::containers::model::Qos;

/// Answers the first request on a new TCP listener with `reply` (raw HTTP, `None`: holds the
/// connection without a word); the listener's base URL.
async fn kubelet_replying(reply: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        answer(stream, reply).await;
    });
    url
}

/// The same on a new Unix socket `dir/name`; the socket's path.
async fn docker_replying(dir: &Path, name: &str, reply: Option<String>) -> PathBuf {
    let path = dir.join(name);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        answer(stream, reply).await;
    });
    path
}

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    reply: Option<String>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 1024];
    let _ = stream.read(&mut buf).await;
    match reply {
        Some(reply) => stream.write_all(reply.as_bytes()).await.unwrap(),
        None => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
    }
}

fn chunked(body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
    ))
}

#[tokio::test]
async fn dechunks_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let url = kubelet_replying(chunked("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n")).await;
    assert_eq!(get_tcp(&url, "/pods").await.unwrap(), b"abcdef");
    let socket = docker_replying(
        dir.path(),
        "a.sock",
        chunked("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"),
    )
    .await;
    assert_eq!(
        get_unix(&socket, "/containers/x/json").await.unwrap(),
        b"abcdef"
    );
    let url = kubelet_replying(chunked("zz\r\n")).await;
    assert!(get_tcp(&url, "/pods").await.is_err());
    let socket = docker_replying(dir.path(), "b.sock", chunked("zz\r\n")).await;
    assert!(get_unix(&socket, "/containers/x/json").await.is_err());
}

#[tokio::test]
async fn errors_name_the_url_or_socket_and_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let err = get_tcp("http://127.0.0.1:1", "/pods").await.unwrap_err();
    assert!(
        err.starts_with("GET http://127.0.0.1:1/pods: cannot connect: ") && err.contains("refused"),
        "{err}"
    );
    let err = get_tcp("https://127.0.0.1:10250", "/pods")
        .await
        .unwrap_err();
    assert!(err.contains("only http://"), "{err}");
    let missing = dir.path().join("none.sock");
    let err = get_unix(&missing, "/containers/x/json").await.unwrap_err();
    assert!(
        err.starts_with(&format!("connect {}: ", missing.display())),
        "{err}"
    );

    let not_found = Some("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string());
    let url = kubelet_replying(not_found.clone()).await;
    let err = get_tcp(&url, "/pods").await.unwrap_err();
    assert_eq!(err, format!("GET {url}/pods: HTTP status 404 Not Found"));
    let socket = docker_replying(dir.path(), "404.sock", not_found).await;
    let err = get_unix(&socket, "/containers/x/json").await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "GET /containers/x/json on {}: HTTP status 404 Not Found",
            socket.display()
        )
    );

    let huge = Some(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{",
        MAX_BODY + 1
    ));
    let url = kubelet_replying(huge.clone()).await;
    let err = get_tcp(&url, "/pods").await.unwrap_err();
    assert!(err.ends_with("reply larger than 67108864 bytes"), "{err}");
    let socket = docker_replying(dir.path(), "huge.sock", huge).await;
    let err = get_unix(&socket, "/containers/x/json").await.unwrap_err();
    assert!(err.ends_with("reply larger than 67108864 bytes"), "{err}");

    // Agents that accept and never answer: both give up after HTTP_TIMEOUT.
    let url = kubelet_replying(None).await;
    let socket = docker_replying(dir.path(), "mute.sock", None).await;
    let started = std::time::Instant::now();
    let (tcp, unix) = tokio::join!(
        get_tcp(&url, "/pods"),
        get_unix(&socket, "/containers/x/json")
    );
    assert!(started.elapsed() < HTTP_TIMEOUT * 2);
    assert_eq!(
        tcp.unwrap_err(),
        format!("GET {url}/pods: timed out after 2s")
    );
    assert_eq!(
        unix.unwrap_err(),
        format!(
            "GET /containers/x/json on {}: timed out after 2s",
            socket.display()
        )
    );
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

#[tokio::test]
async fn daemonset_containers_are_named_by_the_node_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = discovery_tree(dir.path());
    let mut discovery =
        super::super::Discovery::new(&dir.path().join("sys"), &config).with_node_hostname("node-7");
    let pods = PODS
        .replace("containerd://aaaa", &format!("containerd://{CTR_ID}"))
        .replace("docker://cccc", &format!("docker://{MOBY_ID}"));
    discovery.kube = parse_kubelet_pods(pods.as_bytes(), &LabelAllowList::default()).unwrap();
    let set = discovery.discover().await;
    let agent = set.by_id(MOBY_ID).unwrap();
    assert_eq!(
        (agent.kind, agent.hostname.as_str()),
        (crate::containers::ContainerKind::Daemonset, "node-7"),
        "the pod's spec.hostname (`agent`) gives way to the node's"
    );
    assert!(agent
        .labels()
        .contains(&("container_type", "daemonSet".to_string())));
    // Other pods keep theirs.
    assert_eq!(set.by_id(CTR_ID).unwrap().hostname, "web-0");
}
