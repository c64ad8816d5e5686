//! The connection table and span assembly: per connection (the kernel socket), the role it
//! plays (client sends the request, server receives it), and each request paired with its
//! response: the request's first byte (its TCP sequence number and time) and the response's
//! first byte. An exchange becomes a [`Span`] when the next request starts, the connection
//! closes, or it has been idle for the flush delay. The table is bounded: the least recently
//! active connection makes room for a new one.

use std::collections::HashMap;
use std::net::IpAddr;

use super::http::{self, HttpRequest, TraceParent};
use super::record::{Direction, MessageRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    /// The direction a request travels on this side.
    fn request_direction(self) -> Direction {
        match self {
            Role::Client => Direction::Send,
            Role::Server => Direction::Recv,
        }
    }
}

/// The endpoint and owner of a connection, as the kernel reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub netns: u32,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    pub srtt_us: u32,
}

impl ConnInfo {
    fn of(record: &MessageRecord) -> Self {
        Self {
            local: record.local,
            local_port: record.local_port,
            remote: record.remote,
            remote_port: record.remote_port,
            netns: record.netns,
            pid: record.pid,
            tid: record.tid,
            comm: record.comm.clone(),
            cgroup_id: record.cgroup_id,
            srtt_us: record.srtt_us,
        }
    }

    fn same_tuple(&self, record: &MessageRecord) -> bool {
        self.local == record.local
            && self.local_port == record.local_port
            && self.remote == record.remote
            && self.remote_port == record.remote_port
    }
}

/// Why a span ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoResponse {
    /// The connection closed first.
    Closed,
    /// Nothing came back within the response timeout.
    TimedOut,
}

/// One request/response exchange seen from one side of a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub role: Role,
    pub conn: ConnInfo,
    /// Boot-time ns of the request's first byte (client: sent, server: received).
    pub start_ns: u64,
    /// Boot-time ns of the response's first byte, or of the end of the wait when none came.
    pub end_ns: u64,
    /// TCP sequence number of the request's first byte: the same on both sides of the call.
    pub request_seq: u32,
    pub response_seq: Option<u32>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// `None`: the generic request/response-on-TCP fallback.
    pub http: Option<HttpRequest>,
    pub status: Option<u16>,
    pub no_response: Option<NoResponse>,
}

impl Span {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The client's port: the one tuple field NAT in front of a server (DNAT) leaves alone.
    pub fn client_port(&self) -> u16 {
        match self.role {
            Role::Client => self.conn.local_port,
            Role::Server => self.conn.remote_port,
        }
    }

    /// Client port and request sequence number: what both agents of one call compute alike.
    pub fn association_id(&self) -> u64 {
        (u64::from(self.client_port()) << 32) | u64::from(self.request_seq)
    }

    /// The association key as a span attribute: 12 hex digits, port then sequence number.
    pub fn association_key(&self) -> String {
        format!("{:04x}{:08x}", self.client_port(), self.request_seq)
    }

    pub fn traceparent(&self) -> Option<TraceParent> {
        self.http.as_ref().and_then(|h| h.traceparent)
    }

    /// OpenTelemetry's HTTP error rule (a client span errs from 400, a server span from 500);
    /// no response at all is an error for every protocol.
    pub fn is_error(&self) -> bool {
        if self.no_response.is_some() {
            return true;
        }
        match (self.status, self.role) {
            (Some(status), Role::Client) => status >= 400,
            (Some(status), Role::Server) => status >= 500,
            (None, _) => false,
        }
    }

    pub fn protocol(&self) -> &'static str {
        if self.http.is_some() {
            "http"
        } else {
            "tcp"
        }
    }
}

#[derive(Debug)]
struct Exchange {
    start_ns: u64,
    request_seq: u32,
    request_bytes: u64,
    http: Option<HttpRequest>,
    response: Option<(u64, u32)>,
    status: Option<u16>,
    response_bytes: u64,
    /// The thread that handled the request.
    pid: u32,
    tid: u32,
    comm: String,
}

#[derive(Debug)]
struct Connection {
    info: ConnInfo,
    role: Option<Role>,
    exchange: Option<Exchange>,
    last_ns: u64,
}

/// Limits of the table.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    pub max_connections: usize,
    /// A responded exchange idle this long is complete (its connection stays open).
    pub flush_after_ns: u64,
    /// A request unanswered this long is a span with no response.
    pub response_timeout_ns: u64,
}

/// Connections by kernel socket address.
#[derive(Debug)]
pub struct ConnectionTable {
    limits: TableLimits,
    connections: HashMap<u64, Connection>,
    /// Connections dropped to make room (cumulative).
    pub evicted_total: u64,
}

impl ConnectionTable {
    pub fn new(limits: TableLimits) -> Self {
        Self {
            limits,
            connections: HashMap::new(),
            evicted_total: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Feeds one record; finished spans go to `out`.
    pub fn observe(&mut self, record: &MessageRecord, out: &mut Vec<Span>) {
        if record.direction == Direction::Close {
            if let Some(mut conn) = self.connections.remove(&record.sk) {
                if let Some(span) = finish(&mut conn, Some(record.exit_ns)) {
                    out.push(span);
                }
            }
            return;
        }
        // EOF carries no message; the close that follows flushes.
        if record.bytes == 0 {
            return;
        }
        // A socket address reused by a connection whose close we missed (ring full).
        if let Some(conn) = self.connections.get_mut(&record.sk) {
            if !conn.info.same_tuple(record) {
                if let Some(mut old) = self.connections.remove(&record.sk) {
                    let last_ns = old.last_ns;
                    if let Some(span) = finish(&mut old, Some(last_ns)) {
                        out.push(span);
                    }
                }
            }
        }
        if !self.connections.contains_key(&record.sk) {
            if self.connections.len() >= self.limits.max_connections {
                self.evict_one(out);
            }
            self.connections.insert(
                record.sk,
                Connection {
                    info: ConnInfo::of(record),
                    role: None,
                    exchange: None,
                    last_ns: record.exit_ns,
                },
            );
        }
        let Some(conn) = self.connections.get_mut(&record.sk) else {
            return;
        };
        conn.last_ns = record.exit_ns;
        conn.info.srtt_us = record.srtt_us;
        let role = *conn.role.get_or_insert_with(|| infer_role(record));
        if record.direction == role.request_direction() {
            let responded = conn.exchange.as_ref().is_some_and(|e| e.response.is_some());
            if responded {
                if let Some(span) = finish(conn, None) {
                    out.push(span);
                }
            }
            match conn.exchange.as_mut() {
                Some(exchange) => exchange.request_bytes += u64::from(record.bytes),
                None => conn.exchange = Some(start_exchange(record)),
            }
        } else if let Some(exchange) = conn.exchange.as_mut() {
            match exchange.response {
                Some(_) => exchange.response_bytes += u64::from(record.bytes),
                None => {
                    let status = http::parse_response(&record.payload).map(|r| r.status);
                    // `100 Continue` and other interim responses are not the answer: the body
                    // (or the final response) still follows.
                    if exchange.http.is_some() && status.is_some_and(|s| s < 200) {
                        return;
                    }
                    exchange.response = Some((record.message_ns(), record.seq));
                    exchange.response_bytes = u64::from(record.bytes);
                    exchange.status = status;
                }
            }
        }
        // A response with no request seen (the probe started mid-call) is dropped.
    }

    /// Spans of exchanges done by `now_ns`: responded and idle for the flush delay, or
    /// unanswered past the response timeout. Connections idle past the timeout are forgotten.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<Span>) {
        let limits = self.limits;
        self.connections.retain(|_, conn| {
            let idle = now_ns.saturating_sub(conn.last_ns);
            if let Some(exchange) = &conn.exchange {
                let done = match exchange.response {
                    Some(_) => idle >= limits.flush_after_ns,
                    None => now_ns.saturating_sub(exchange.start_ns) >= limits.response_timeout_ns,
                };
                if done {
                    let end = exchange.response.is_none().then_some(now_ns);
                    if let Some(mut span) = finish(conn, end) {
                        if span.no_response.is_some() {
                            span.no_response = Some(NoResponse::TimedOut);
                        }
                        out.push(span);
                    }
                }
            }
            conn.exchange.is_some() || idle < limits.response_timeout_ns
        });
    }

    fn evict_one(&mut self, out: &mut Vec<Span>) {
        let Some(sk) = self
            .connections
            .iter()
            .min_by_key(|(_, c)| c.last_ns)
            .map(|(sk, _)| *sk)
        else {
            return;
        };
        if let Some(mut conn) = self.connections.remove(&sk) {
            if conn.exchange.as_ref().is_some_and(|e| e.response.is_some()) {
                if let Some(span) = finish(&mut conn, None) {
                    out.push(span);
                }
            }
        }
        self.evicted_total += 1;
    }
}

/// The role of a connection from its first message: an HTTP request line says who asks; else
/// ports (a well-known or registered local port facing an ephemeral one is a server), else
/// the side that sends first is the client.
fn infer_role(record: &MessageRecord) -> Role {
    let sends = record.direction == Direction::Send;
    if http::parse_request(&record.payload).is_some() {
        return if sends { Role::Client } else { Role::Server };
    }
    if http::parse_response(&record.payload).is_some() {
        return if sends { Role::Server } else { Role::Client };
    }
    const EPHEMERAL: u16 = 32768;
    match (
        record.local_port < EPHEMERAL,
        record.remote_port < EPHEMERAL,
    ) {
        (true, false) => Role::Server,
        (false, true) => Role::Client,
        _ if sends => Role::Client,
        _ => Role::Server,
    }
}

fn start_exchange(record: &MessageRecord) -> Exchange {
    Exchange {
        start_ns: record.message_ns(),
        request_seq: record.seq,
        request_bytes: u64::from(record.bytes),
        http: http::parse_request(&record.payload),
        response: None,
        status: None,
        response_bytes: 0,
        pid: record.pid,
        tid: record.tid,
        comm: record.comm.clone(),
    }
}

/// Ends the connection's exchange as a span; `end_ns` is when an unanswered wait ended.
fn finish(conn: &mut Connection, end_ns: Option<u64>) -> Option<Span> {
    let exchange = conn.exchange.take()?;
    let role = conn.role?;
    let mut info = conn.info.clone();
    info.pid = exchange.pid;
    info.tid = exchange.tid;
    info.comm = exchange.comm;
    let (end_ns, response_seq, no_response) = match exchange.response {
        Some((at, seq)) => (at, Some(seq), None),
        None => (
            end_ns.unwrap_or(conn.last_ns).max(exchange.start_ns),
            None,
            Some(NoResponse::Closed),
        ),
    };
    Some(Span {
        role,
        conn: info,
        start_ns: exchange.start_ns,
        end_ns,
        request_seq: exchange.request_seq,
        response_seq,
        request_bytes: exchange.request_bytes,
        response_bytes: exchange.response_bytes,
        http: exchange.http,
        status: exchange.status,
        no_response,
    })
}
