//! Names, hostnames and images of Docker containers from the Docker Engine API
//! (`GET /containers/<id>/json` on its Unix socket).

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Body, Bytes};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::{error_chain, HTTP_TIMEOUT, MAX_BODY};

/// Why the Docker Engine did not describe a container.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("connect {}: {source}", .socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {path} on {}: invalid request: {source}", .socket.display())]
    Request {
        socket: PathBuf,
        path: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("GET {path} on {}: {}", .socket.display(), error_chain(.source))]
    Http {
        socket: PathBuf,
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("GET {path} on {}: HTTP status {status}", .socket.display())]
    Status {
        socket: PathBuf,
        path: String,
        status: StatusCode,
    },
    #[error("GET {path} on {}: reply larger than {MAX_BODY} bytes", .socket.display())]
    TooLarge { socket: PathBuf, path: String },
    #[error("GET {path} on {}: timed out after {HTTP_TIMEOUT:?}", .socket.display())]
    Timeout { socket: PathBuf, path: String },
    #[error("malformed docker inspect reply: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// GET `path` from the Docker Engine listening on `socket`: the body of a 200 reply.
pub async fn get(socket: &Path, path: &str) -> Result<Vec<u8>, DockerError> {
    tokio::time::timeout(HTTP_TIMEOUT, get_unbounded(socket, path))
        .await
        .unwrap_or_else(|_| {
            Err(DockerError::Timeout {
                socket: socket.to_path_buf(),
                path: path.to_string(),
            })
        })
}

/// One request on its own connection (as Docker's own CLI does for a single call).
async fn get_unbounded(socket: &Path, path: &str) -> Result<Vec<u8>, DockerError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| DockerError::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let http = |source: hyper::Error| DockerError::Http {
        socket: socket.to_path_buf(),
        path: path.to_string(),
        source,
    };
    let too_large = || DockerError::TooLarge {
        socket: socket.to_path_buf(),
        path: path.to_string(),
    };
    let request = Request::get(path)
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|source| DockerError::Request {
            socket: socket.to_path_buf(),
            path: path.to_string(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        if response.status() != StatusCode::OK {
            return Err(DockerError::Status {
                socket: socket.to_path_buf(),
                path: path.to_string(),
                status: response.status(),
            });
        }
        if response.body().size_hint().lower() > MAX_BODY as u64 {
            return Err(too_large());
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(source) => http(*source),
                Err(_) => too_large(),
            })?;
        Ok(body.to_bytes().to_vec())
    };
    // The connection is driven beside the exchange and closed when the exchange ends.
    tokio::select! {
        result = exchange => result,
        Err(source) = connection => Err(http(source)),
    }
}

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
pub fn parse_inspect(body: &[u8]) -> Result<(String, String, String), DockerError> {
    let inspect: DockerInspect = serde_json::from_slice(body).map_err(DockerError::Malformed)?;
    Ok((
        inspect.name.trim_start_matches('/').to_string(),
        inspect.config.hostname,
        inspect.config.image,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_inspect_names() {
        let body = br#"{"Name":"/redis","Config":{"Hostname":"c0ffee","Image":"redis:7"}}"#;
        assert_eq!(
            parse_inspect(body).unwrap(),
            ("redis".into(), "c0ffee".into(), "redis:7".into())
        );
    }
}
