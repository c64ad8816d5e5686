//! The agent's HTTP API as the CLI reads it: JSON envelopes from `GET`, and the Server-Sent
//! Events of `POST /v1/events/watch`, read line by line as they arrive.

use std::io::{BufRead, BufReader, Lines};
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;

/// How long `events list` and `events show` wait for the agent (a stream waits for ever).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why the agent's reply could not be had or used; each names the agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up an HTTP client: {}", cause(.0))]
    Setup(#[source] reqwest::Error),
    #[error("`{server}` is not an agent address (HOST:PORT): {}", cause(.source))]
    BadServer {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot connect to the agent at {server}: {} (is it running? see --server)", cause(.source))]
    Connect {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot connect to {server}: {}", cause(.source))]
    StreamConnect {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no reply from {server}: {}", cause(.source))]
    NoReply {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("malformed reply from {server}{path} (HTTP {status}, {source}): {body}")]
    Malformed {
        server: String,
        path: String,
        status: u16,
        body: String,
        #[source]
        source: serde_json::Error,
    },
    /// The agent's own error message.
    #[error("{message} (HTTP {status})")]
    Agent { message: String, status: u16 },
    #[error("the agent refused the stream: {status_line}")]
    StreamRefused { status_line: String },
    #[error("stream interrupted: {0}")]
    StreamInterrupted(#[source] std::io::Error),
}

/// What failed at the bottom: reqwest's own message repeats the URL and hides the cause.
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("timed out after {TIMEOUT:?}");
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

fn client(timeout: Option<Duration>) -> Result<Client, ClientError> {
    Client::builder()
        .timeout(timeout)
        .connect_timeout(TIMEOUT)
        // The agent is reached directly, never through an HTTP(S)_PROXY of the environment.
        .no_proxy()
        .tls_built_in_root_certs(false)
        .build()
        .map_err(ClientError::Setup)
}

/// Sorts a failed request: a bad address, no agent listening, or no (complete) reply.
fn request_failed(server: &str, source: reqwest::Error) -> ClientError {
    let server = server.to_string();
    if source.is_builder() {
        ClientError::BadServer { server, source }
    } else if source.is_connect() && !source.is_timeout() {
        ClientError::Connect { server, source }
    } else {
        ClientError::NoReply { server, source }
    }
}

/// GETs `path` from the agent and returns the `data` of its JSON envelope, or the error's message.
pub(super) fn fetch(server: &str, path: &str) -> Result<Value, ClientError> {
    let response = client(Some(TIMEOUT))?
        .get(format!("http://{server}{path}"))
        .header(ACCEPT, "application/json")
        .send()
        .map_err(|e| request_failed(server, e))?;
    let status = response.status().as_u16();
    let body = response.bytes().map_err(|source| ClientError::NoReply {
        server: server.to_string(),
        source,
    })?;
    let reply: Value = serde_json::from_slice(&body).map_err(|source| ClientError::Malformed {
        server: server.to_string(),
        path: path.to_string(),
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        source,
    })?;
    if status == 200 {
        return Ok(reply.get("data").cloned().unwrap_or(Value::Null));
    }
    let message = reply
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no error message");
    Err(ClientError::Agent {
        message: message.to_string(),
        status,
    })
}

/// Opens the agent's live stream with `filters` (the body of `POST /v1/events/watch`).
pub(super) fn watch(server: &str, filters: &Value) -> Result<EventStream, ClientError> {
    let response = client(None)?
        .post(format!("http://{server}/v1/events/watch"))
        .header(CONTENT_TYPE, "application/json")
        .body(filters.to_string())
        .send()
        .map_err(|source| match request_failed(server, source) {
            ClientError::Connect { server, source } => {
                ClientError::StreamConnect { server, source }
            }
            other => other,
        })?;
    if response.status() != StatusCode::OK {
        return Err(ClientError::StreamRefused {
            status_line: format!("{:?} {}", response.version(), response.status()),
        });
    }
    Ok(EventStream {
        lines: BufReader::new(response).lines(),
    })
}

/// The `data:` of each Server-Sent Event, as the agent sends it; ends when the agent closes.
pub(super) struct EventStream {
    lines: Lines<BufReader<Response>>,
}

impl Iterator for EventStream {
    type Item = Result<String, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        for line in self.lines.by_ref() {
            let line = match line {
                Ok(line) => line,
                Err(e) => return Some(Err(ClientError::StreamInterrupted(e))),
            };
            // Ids, comments (pings) and blank separators are skipped; `data:` lines carry events.
            let data = line
                .strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"));
            if let Some(data) = data {
                return Some(Ok(data.to_string()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
