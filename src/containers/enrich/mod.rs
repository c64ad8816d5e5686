//! Optional enrichment of cgroup-discovered containers: pod metadata from the kubelet's `/pods`,
//! names/images from the Docker Engine socket, and names/pods/images from the OCI bundle
//! `config.json` that containerd and CRI-O keep on disk for each running container (no API call).
//! Any source may be absent (a host without Kubernetes, a node without Docker); containers are
//! then named by their short id.

mod bundles;
mod containerd;
mod crio;
mod docker;
mod kubelet;
mod oci;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use bundles::BundleDirs;
pub use docker::parse_docker_inspect;
pub use kubelet::{apply_kube, parse_kubelet_pods, KubeContainer, LabelAllowList};
pub use oci::{apply_bundle, parse_oci_config, BundleMeta};

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
