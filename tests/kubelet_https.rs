//! Kubelet over HTTPS as upstream: when the read-only port does not answer, `GET /pods` goes to
//! the authenticated port with a client certificate (one PEM or "crt,key") or a bearer token.
//! The server here is real TLS (rustls) with certificates made by `openssl` at test time; like
//! a kubelet it asks for a client certificate, accepts a token instead, and answers 401 to
//! neither. Discovery then names a container of a cgroup tree from the served pods.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use huatuo_bamai::containers::enrich::kubelet::KubeletSource;
use huatuo_bamai::containers::{ContainersConfig, Discovery};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "kubelet-test-token";
/// The container of tests/fixtures/kubelet/pods.json.
const CONTAINER: &str = "3f6a5c1e9b2d4c8a7e6f5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make the test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a kubelet serving certificate for `node-1` (not 127.0.0.1, as real kubelets), a client
/// certificate, and the client certificate + key in one PEM; a second, unrelated CA.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
        let subject = format!("/CN={ca}");
        args.push(&subject);
        args.extend(ec);
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        args.extend(["-keyout", &key, "-out", &crt]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(dir, &args);
    }
    for (name, ext) in [
        (
            "server",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:node-1\n",
        ),
        (
            "client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut args = vec!["req", "-subj", "/CN=node-1"];
        args.extend(ec);
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        args.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ],
        );
    }
    let mut pem = std::fs::read(dir.join("client.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("client.key")).unwrap());
    std::fs::write(dir.join("client.pem"), pem).unwrap();
}

/// How each request the server answered was authenticated.
#[derive(Debug, Clone, PartialEq)]
enum Auth {
    ClientCert,
    Token,
    Refused,
}

/// The HTTPS kubelet: serves the pods fixture at /pods; its base URL and the request log.
async fn https_kubelet(dir: &Path) -> (String, Arc<Mutex<Vec<Auth>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_file(dir.join("server.crt")).unwrap()],
            PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let pods = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubelet/pods.json"),
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let served = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            // A handshake the client aborts (wrong CA) is just the end of that connection.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let auth = if tls.get_ref().1.peer_certificates().is_some() {
                Auth::ClientCert
            } else if head.contains(&format!(
                "authorization: bearer {}",
                TOKEN.to_ascii_lowercase()
            )) {
                Auth::Token
            } else {
                Auth::Refused
            };
            served.lock().unwrap().push(auth.clone());
            let (status, body): (&str, &[u8]) = match (&auth, head.starts_with("get /pods ")) {
                (Auth::Refused, _) => ("401 Unauthorized", b"Unauthorized"),
                (_, true) => ("200 OK", &pods),
                (_, false) => ("404 Not Found", b""),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes()).await;
            let _ = tls.write_all(body).await;
            let _ = tls.shutdown().await;
        }
    });
    (url, log)
}

/// A cgroup v2 tree with the fixture's container in a burstable pod (systemd driver).
fn cgroup_tree(root: &Path) -> PathBuf {
    let sys = root.join("sys");
    let cgroup = sys.join("fs/cgroup");
    let scope = cgroup.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0.slice/cri-containerd-{CONTAINER}.scope"
    ));
    std::fs::create_dir_all(&scope).unwrap();
    std::fs::write(
        cgroup.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    std::fs::write(scope.join("cgroup.procs"), "4343\n").unwrap();
    sys
}

/// Only the HTTPS kubelet: the read-only port is a closed one, no other metadata source.
fn https_only(https_url: &str, dir: &Path) -> ContainersConfig {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let read_only = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    ContainersConfig {
        kubelet_url: read_only,
        kubelet_https_url: https_url.to_string(),
        kubelet_client_cert: String::new(),
        kubelet_token_file: dir.join("no-token"),
        kubelet_ca_file: PathBuf::new(),
        docker_socket: PathBuf::new(),
        containerd_state_dir: PathBuf::new(),
        crio_storage_dir: PathBuf::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn discovery_reads_pods_from_the_https_kubelet_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (url, log) = https_kubelet(dir.path()).await;
    let sys = cgroup_tree(dir.path());
    let crt_key = format!(
        "{},{}",
        dir.path().join("client.crt").display(),
        dir.path().join("client.key").display()
    );
    let config = ContainersConfig {
        kubelet_client_cert: crt_key,
        ..https_only(&url, dir.path())
    };
    let mut discovery = Discovery::new(&sys, &config);
    let set = discovery.discover().await;
    let web = set
        .by_id(CONTAINER)
        .unwrap_or_else(|| panic!("container not discovered in {}", sys.display()));
    assert_eq!(
        (
            web.name.as_str(),
            web.namespace.as_str(),
            web.hostname.as_str()
        ),
        ("nginx", "shop", "web-7d4b9c6f5-x2k8p"),
        "named from the HTTPS kubelet's pods"
    );
    assert_eq!(web.image, "docker.io/library/nginx:1.27");
    assert_eq!(
        web.pod.as_ref().map(|p| p.uid.as_str()),
        Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
    );
    assert_eq!(*log.lock().unwrap(), [Auth::ClientCert]);
}

#[tokio::test]
async fn one_pem_with_cert_and_key_and_a_ca_that_signed_the_kubelet() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (url, log) = https_kubelet(dir.path()).await;
    let config = ContainersConfig {
        kubelet_client_cert: dir.path().join("client.pem").display().to_string(),
        kubelet_ca_file: dir.path().join("ca.crt"),
        ..https_only(&url, dir.path())
    };
    let body = KubeletSource::new(&config).pods().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains(CONTAINER));
    assert_eq!(*log.lock().unwrap(), [Auth::ClientCert]);

    // A CA that did not sign the kubelet's certificate: refused before any request.
    let config = ContainersConfig {
        kubelet_ca_file: dir.path().join("other-ca.crt"),
        ..config
    };
    let err = KubeletSource::new(&config).pods().await.unwrap_err();
    assert!(
        err.contains(&format!("GET {url}/pods")) && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(log.lock().unwrap().len(), 1, "no request got through");
}

#[tokio::test]
async fn without_a_certificate_the_service_account_token_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (url, log) = https_kubelet(dir.path()).await;
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let config = ContainersConfig {
        kubelet_token_file: token,
        ..https_only(&url, dir.path())
    };
    let mut kubelet = KubeletSource::new(&config);
    assert!(kubelet.pods().await.is_ok());
    assert_eq!(*log.lock().unwrap(), [Auth::Token]);

    // Neither certificate nor token: the kubelet's 401, after the read-only port's refusal.
    let config = https_only(&url, dir.path());
    let err = KubeletSource::new(&config).pods().await.unwrap_err();
    assert!(
        err.contains("cannot connect"),
        "read-only port tried first: {err}"
    );
    assert!(
        err.ends_with(&format!(
            "then GET {url}/pods: HTTP status 401 Unauthorized"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn an_unusable_client_certificate_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.pem");
    let config = ContainersConfig {
        kubelet_client_cert: missing.display().to_string(),
        kubelet_url: String::new(),
        ..https_only("https://127.0.0.1:1", dir.path())
    };
    let err = KubeletSource::new(&config).pods().await.unwrap_err();
    assert!(
        err.starts_with(&format!("kubelet client certificate {}", missing.display())),
        "{err}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let config = ContainersConfig {
        kubelet_client_cert: garbage.display().to_string(),
        ..config
    };
    let err = KubeletSource::new(&config).pods().await.unwrap_err();
    assert!(
        err.contains("not a PEM certificate and private key"),
        "{err}"
    );
}
