use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use super::*;

/// An agent that answers one request with `respond`; its address. The request (head and
/// `Content-Length` body) is read first, as a real server would.
fn agent(respond: impl FnOnce(&mut TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            request.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
        respond(&mut stream);
    });
    server
}

fn reply(status: &str, body: &'static str) -> impl FnOnce(&mut TcpStream) + Send {
    let status = status.to_string();
    move |stream| {
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).unwrap();
    }
}

#[test]
fn fetch_returns_the_data_of_the_envelope() {
    let server = agent(reply("200 OK", r#"{"data":[{"tracer_id":"a"}]}"#));
    assert_eq!(
        fetch(&server, "/v1/events").unwrap(),
        json!([{"tracer_id": "a"}])
    );
    // A chunked reply (axum streams long lists) reads the same.
    let server = agent(|stream| {
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\n{\"dat\r\n9\r\na\":[1,2]}\r\n0\r\n\r\n",
            )
            .unwrap();
    });
    assert_eq!(fetch(&server, "/v1/events").unwrap(), json!([1, 2]));
}

#[test]
fn fetch_errors_say_what_the_agent_said_or_why_there_was_no_answer() {
    let server = agent(reply(
        "400 Bad Request",
        r#"{"error":{"message":"`limit` must be 1 to 10000"}}"#,
    ));
    let err = fetch(&server, "/v1/events?limit=0")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "`limit` must be 1 to 10000 (HTTP 400)");

    let server = agent(reply("502 Bad Gateway", "oops"));
    let err = fetch(&server, "/v1/events").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "malformed reply from {server}/v1/events (HTTP 502, "
        )) && err.ends_with("): oops"),
        "{err}"
    );

    let err = fetch("127.0.0.1:1", "/v1/events").unwrap_err().to_string();
    assert!(
        err.starts_with("cannot connect to the agent at 127.0.0.1:1: ")
            && err.contains("refused")
            && err.ends_with(" (is it running? see --server)"),
        "{err}"
    );
    let err = fetch("no port here", "/v1/events").unwrap_err().to_string();
    assert!(
        err.starts_with("`no port here` is not an agent address"),
        "{err}"
    );

    // An agent that closes without a reply.
    let server = agent(|stream| {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    });
    let err = fetch(&server, "/v1/events").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("no reply from {server}: ")),
        "{err}"
    );
}

#[test]
fn watch_yields_each_event_as_it_arrives() {
    let (received_first, received) = mpsc::channel::<()>();
    let server = agent(move |stream| {
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                  Transfer-Encoding: chunked\r\n\r\n",
            )
            .unwrap();
        let event = |stream: &mut TcpStream, text: &str| {
            write!(stream, "{:x}\r\n{text}\r\n", text.len()).unwrap();
            stream.flush().unwrap();
        };
        event(stream, ": ping\n\nid: 1\ndata: {\"n\":1}\n\n");
        // The second event only once the client has the first: events are read as they come.
        received.recv_timeout(Duration::from_secs(10)).unwrap();
        event(stream, "data:{\"n\":2}\n\n");
        stream.write_all(b"0\r\n\r\n").unwrap();
    });
    let started = std::time::Instant::now();
    let mut events = watch(&server, &json!({"filters": {}})).unwrap();
    assert_eq!(events.next().unwrap().unwrap(), r#"{"n":1}"#);
    assert!(started.elapsed() < Duration::from_secs(5), "read live");
    received_first.send(()).unwrap();
    assert_eq!(events.next().unwrap().unwrap(), r#"{"n":2}"#);
    assert!(
        events.next().is_none(),
        "the stream ends when the agent closes it"
    );
}

#[test]
fn watch_errors_name_the_agent_or_its_status() {
    let server = agent(reply(
        "400 Bad Request",
        r#"{"error":{"message":"bad regex"}}"#,
    ));
    let err = watch(&server, &json!({"filters": {"tracer_name": "("}}))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "the agent refused the stream: HTTP/1.1 400 Bad Request"
    );
    let err = watch("127.0.0.1:1", &json!({"filters": {}}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("cannot connect to 127.0.0.1:1: ") && err.contains("refused"),
        "{err}"
    );
}
