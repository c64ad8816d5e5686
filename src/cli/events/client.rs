//! The agent's HTTP API as the CLI reads it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// GETs `path` from the agent and returns the `data` of its JSON envelope, or the error's message.
pub(super) fn fetch(server: &str, path: &str) -> Result<Value, String> {
    let (status, body) = http_get(server, path)?;
    let reply: Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "malformed reply from {server}{path} (HTTP {status}, {e}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    if status == 200 {
        return Ok(reply.get("data").cloned().unwrap_or(Value::Null));
    }
    let message = reply
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no error message");
    Err(format!("{message} (HTTP {status})"))
}

fn http_get(server: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(server).map_err(|e| {
        format!("cannot connect to the agent at {server}: {e} (is it running? see --server)")
    })?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send the request to {server}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("no reply from {server}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP reply from {server}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed HTTP status line from {server}"))?;
    let body = &raw[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
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
