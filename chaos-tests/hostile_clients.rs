//! Hostile clients on both doors of the agent: idle and slow HTTP connections are bounded (a
//! full server closes the extra ones at once, a client that sends no headers in time is
//! disconnected), junk on every HTTP endpoint gets 4xx never 5xx, a huge body is refused; the
//! control socket answers invalid UTF-8 with an error, survives half-closed connections and
//! serves 200 concurrent clients. After each, the agent still answers and has lost nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::common::{http_get, http_request, sample, Agent};
use super::SERIAL;

const MAX_CONNECTIONS: usize = 16;

/// Whether the server closed `stream` (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 written before the close is fine; keep reading to the EOF.
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slow_http_clients_are_bounded_and_scrapes_go_on() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agent = Agent::start_with(
        &["loadavg"],
        &format!("[http]\nmax_connections = {MAX_CONNECTIONS}\nheader_read_timeout_ms = 1000\n"),
    );
    // Slowloris: more connections than slots, each sending one byte of a request line.
    let mut idle: Vec<TcpStream> = (0..MAX_CONNECTIONS * 3)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", agent.port)).ok())
        .collect();
    for s in &mut idle {
        let _ = s.write_all(b"G");
    }
    let opened = Instant::now();
    // Every one of them is closed: the extra at once, the rest by the header timeout.
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(4)),
            "idle connection {i} still open {:?} after connecting",
            opened.elapsed()
        );
    }
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "slow clients held the server for {:?}",
        opened.elapsed()
    );
    // A client trickling its headers one byte every 300 ms is cut off too.
    let mut trickle = TcpStream::connect(("127.0.0.1", agent.port)).expect("connect");
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n" {
        if trickle.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        cut || closed_within(&mut trickle, Duration::from_secs(1)),
        "a client trickling headers kept its connection for {:?}",
        started.elapsed()
    );

    let (status, body) = http_get(agent.port, "/metrics").expect("scrape after the storm");
    assert_eq!(status, 200);
    let rejected = sample(&body, "huatuo_bamai_http_connections_rejected_total", &[])
        .expect("rejections counted");
    assert!(
        rejected >= (MAX_CONNECTIONS * 2) as f64 - 2.0,
        "only {rejected} connections rejected of {} over the limit",
        MAX_CONNECTIONS * 2
    );
}

/// Deterministic junk (xorshift), so a failure reproduces.
fn junk(seed: &mut u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcz09%&=?/.-_~+ '\"<>{}[]\\;:,!@#$^*()|";
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let b = ALPHABET[(*seed % ALPHABET.len() as u64) as usize];
            // Keep the request line parseable: encode what a URL cannot hold raw.
            match b {
                b' ' | b'"' | b'<' | b'>' | b'\\' | b'{' | b'}' | b'|' | b'^' | b'[' | b']' => {
                    format!("%{b:02X}")
                }
                _ => (b as char).to_string(),
            }
        })
        .collect()
}

#[test]
fn junk_on_every_http_endpoint_gets_client_errors_never_server_errors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agent = Agent::start(&["loadavg"]);
    let routes: &[(&str, &str)] = &[
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/version"),
        ("GET", "/tracers"),
        ("PUT", "/tracers/JUNK/start"),
        ("PUT", "/tracers/JUNK/stop"),
        ("PUT", "/config"),
        ("GET", "/containers/json"),
        ("GET", "/v1/events"),
        ("GET", "/v1/events/JUNK"),
        ("POST", "/v1/events/watch"),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut server_errors = Vec::new();
    for round in 0..20 {
        for (method, route) in routes {
            let path = route.replace("JUNK", &junk(&mut seed, 1 + round));
            let query = junk(&mut seed, 3 * round + 1);
            // Never empty: an empty watch body is a valid "everything" stream that stays open.
            let body = junk(&mut seed, 2 * round + 1);
            let target = format!("{path}?{query}");
            // The watch stream would stay open on a valid body: junk bodies only.
            match http_request(agent.port, method, &target, &body) {
                Ok((status, reply)) if status >= 500 || status == 0 => {
                    server_errors.push(format!("{method} {target} [{body}] -> {status} {reply}"))
                }
                Ok(_) => {}
                Err(e) => server_errors.push(format!("{method} {target} [{body}] -> {e}")),
            }
        }
    }
    assert!(
        server_errors.is_empty(),
        "server errors:\n{}",
        server_errors.join("\n")
    );

    // A huge body is refused without being buffered whole: the 413 may arrive (and the server
    // close) while the body is still being written, so the write may fail; the answer is read.
    let mut stream = TcpStream::connect(("127.0.0.1", agent.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let huge = vec![b'x'; 8 << 20];
    let _ = write!(
        stream,
        "PUT /config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    );
    let _ = stream.write_all(&huge);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "an 8 MiB PUT /config got: {}",
        answer.lines().next().unwrap_or("nothing")
    );
    assert!(matches!(http_get(agent.port, "/readyz"), Ok((204, _))));
}

#[test]
fn control_socket_survives_invalid_utf8_half_closed_and_200_concurrent_clients() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let agent = Agent::start(&["loadavg"]);

    // Invalid UTF-8 gets an error reply on a still-usable connection.
    let mut stream = UnixStream::connect(&agent.socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"\xff\xfe status \xc3\x28\n")
        .expect("write");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .expect("reply to invalid UTF-8");
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{reply}"
    );

    // Half-closed: a partial line then EOF on the write side, and a connection closed mid-line.
    for partial in [&b"stat"[..], b"{\"command\": \"sta"] {
        let s = UnixStream::connect(&agent.socket).expect("connect");
        let mut w = s.try_clone().expect("clone");
        w.write_all(partial).expect("write");
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut rest = String::new();
        // The agent answers the partial request or just closes; either way it must not hang.
        let _ = BufReader::new(s).read_to_string(&mut rest);
    }
    drop(UnixStream::connect(&agent.socket).map(|mut s| s.write_all(b"status")));

    // 200 clients at once, each asking for the status.
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let socket = agent.socket.clone();
            std::thread::spawn(move || -> Result<bool, String> {
                let s = UnixStream::connect(&socket).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .map_err(|e| e.to_string())?;
                let mut w = s.try_clone().map_err(|e| e.to_string())?;
                w.write_all(b"status\n").map_err(|e| e.to_string())?;
                let mut line = String::new();
                BufReader::new(s)
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                let reply: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
                Ok(reply["ok"] == true)
            })
        })
        .collect();
    let results: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
        .collect();
    let failed: Vec<_> = results.iter().filter(|r| !matches!(r, Ok(true))).collect();
    assert!(
        failed.is_empty(),
        "{} of 200 clients failed: {failed:?}",
        failed.len()
    );
    assert_eq!(agent.actor_state("control"), "running");
    assert!(agent.metrics().contains("huatuo_bamai_loadavg_load1"));
}
