//! The HTTP side: one `_bulk` POST to one of the configured addresses, and what became of it.

use std::time::Duration;

use super::bulk::{self, BulkError, ItemOutcome, StatusClass};
use super::config::ElasticsearchConfig;

/// Keeps the answer small: only what the sink reads of each item.
const BULK_PATH: &str = "_bulk?filter_path=errors,items.*.status,items.*.error";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read events.elasticsearch.ca_file {path}: {source}")]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("events.elasticsearch.ca_file {path} holds no usable PEM certificate: {source}")]
    CaPem {
        path: std::path::PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("events.elasticsearch.addresses: `{address}`: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// What became of one bulk request.
#[derive(Debug)]
pub enum BulkReply {
    /// The cluster answered; one outcome per document, in order.
    Items(Vec<ItemOutcome>),
    /// Nothing was (reliably) indexed and it may work later: no connection, a timeout, 429,
    /// 5xx, an auth or routing error an operator fixes. The whole batch waits in the spool.
    Unavailable(String),
    /// The request itself was refused (400, 413 …): split it; a single document is dead-lettered.
    Refused { status: u16, message: String },
}

#[derive(Clone)]
pub struct BulkClient {
    http: reqwest::Client,
    endpoints: Vec<reqwest::Url>,
    current: usize,
    auth: Option<(String, String)>,
}

impl BulkClient {
    pub fn new(config: &ElasticsearchConfig) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms.min(5_000)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("huatuo-bamai/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(config.insecure_skip_verify);
        if !config.ca_file.as_os_str().is_empty() {
            let pem = std::fs::read(&config.ca_file).map_err(|source| ClientError::CaFile {
                path: config.ca_file.clone(),
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                ClientError::CaPem {
                    path: config.ca_file.clone(),
                    source,
                }
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(ClientError::Build)?;
        let endpoints = config
            .addresses
            .iter()
            .map(|address| bulk_endpoint(address))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(ClientError::Address {
                address: String::new(),
                reason: "no address configured".into(),
            });
        }
        let auth = (!config.username.is_empty())
            .then(|| (config.username.clone(), config.password.clone()));
        Ok(Self {
            http,
            endpoints,
            current: 0,
            auth,
        })
    }

    /// The cluster address requests go to now (for status and logs).
    pub fn address(&self) -> String {
        let url = &self.endpoints[self.current % self.endpoints.len()];
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
    }

    /// After a failure, the next request tries the next address.
    pub fn rotate(&mut self) {
        self.current = (self.current + 1) % self.endpoints.len();
    }

    /// One bulk request of `count` documents; the future owns what it needs.
    pub fn send(
        &self,
        body: Vec<u8>,
        count: usize,
    ) -> impl std::future::Future<Output = BulkReply> + Send + 'static {
        let url = self.endpoints[self.current % self.endpoints.len()].clone();
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        async move {
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return BulkReply::Unavailable(error_chain(&e)),
            };
            let status = response.status().as_u16();
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(e) => return BulkReply::Unavailable(error_chain(&e)),
            };
            match bulk::classify(status) {
                StatusClass::Success => match bulk::parse_response(&body, count) {
                    Ok(items) => BulkReply::Items(items),
                    Err(e @ BulkError::BadResponse(_)) => BulkReply::Unavailable(e.to_string()),
                    Err(e) => BulkReply::Unavailable(e.to_string()),
                },
                StatusClass::Reject if matches!(status, 400 | 413) => BulkReply::Refused {
                    status,
                    message: answer_message(status, &body),
                },
                _ => BulkReply::Unavailable(answer_message(status, &body)),
            }
        }
    }
}

fn bulk_endpoint(address: &str) -> Result<reqwest::Url, ClientError> {
    let bad = |reason: String| ClientError::Address {
        address: address.to_string(),
        reason,
    };
    let mut base = reqwest::Url::parse(address).map_err(|e| bad(e.to_string()))?;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(BULK_PATH).map_err(|e| bad(e.to_string()))
}

/// "HTTP 429: rejected execution …" from an error answer, short enough for a status line.
fn answer_message(status: u16, body: &[u8]) -> String {
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(bulk::error_reason))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let mut message = format!("HTTP {status}");
    if !reason.is_empty() {
        message.push_str(": ");
        message.extend(reason.chars().take(200));
    }
    message
}

/// reqwest's message and its causes ("error sending request …: connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() {
        "timed out".to_string()
    } else {
        String::new()
    };
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        source = e.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_a_path_prefix() {
        let url = bulk_endpoint("http://127.0.0.1:9200").unwrap();
        assert_eq!(url.path(), "/_bulk");
        assert!(url.query().unwrap().starts_with("filter_path="));
        let url = bulk_endpoint("https://proxy.example/es").unwrap();
        assert_eq!(
            url.as_str().split('?').next(),
            Some("https://proxy.example/es/_bulk")
        );
    }

    #[test]
    fn addresses_rotate_after_a_failure() {
        let config = ElasticsearchConfig {
            addresses: vec!["http://a:9200".into(), "http://b:9201/x".into()],
            ..Default::default()
        };
        let mut client = BulkClient::new(&config).unwrap();
        assert_eq!(client.address(), "http://a:9200");
        client.rotate();
        assert_eq!(client.address(), "http://b:9201");
        client.rotate();
        assert_eq!(client.address(), "http://a:9200");
    }

    #[test]
    fn a_missing_ca_file_names_the_key() {
        let config = ElasticsearchConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            ..Default::default()
        };
        let err = BulkClient::new(&config).err().unwrap().to_string();
        assert!(err.contains("events.elasticsearch.ca_file"), "{err}");
    }

    #[test]
    fn error_answers_are_summarised() {
        let body = br#"{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429}"#;
        assert_eq!(answer_message(429, body), "HTTP 429: queue full");
        assert_eq!(answer_message(502, b"Bad Gateway"), "HTTP 502: Bad Gateway");
        assert_eq!(answer_message(503, b""), "HTTP 503");
    }
}
