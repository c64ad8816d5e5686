//! RED metrics of the spans: requests, errors and a duration histogram per (role, protocol,
//! local service, peer). Cumulative since the probe started; the number of series is bounded
//! (later pairs share `peer="other"`).

use std::collections::BTreeMap;

use super::conn::{Role, Span};
use crate::exposition::MetricSet;

/// Upper bounds (seconds) of the duration histogram.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const OTHER: &str = "other";

/// Who is calling whom, from one side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServicePair {
    pub role: &'static str,
    pub protocol: &'static str,
    /// This side's workload: its container's name, else the process name.
    pub service: String,
    /// The other side: the server's `ip:port` for a client, the client's `ip` for a server.
    pub peer: String,
}

impl ServicePair {
    pub fn of(span: &Span, service: String) -> Self {
        let peer = match span.role {
            Role::Client => format!("{}:{}", span.conn.remote, span.conn.remote_port),
            // Client ports are ephemeral: one series per client address.
            Role::Server => span.conn.remote.to_string(),
        };
        Self {
            role: span.role.as_str(),
            protocol: span.protocol(),
            service,
            peer,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Red {
    pub requests: u64,
    pub errors: u64,
    /// Per bucket of [`BUCKETS`] (not cumulative).
    pub buckets: [u64; BUCKETS.len()],
    pub sum_seconds: f64,
}

#[derive(Debug)]
pub struct RedMetrics {
    max_series: usize,
    series: BTreeMap<ServicePair, Red>,
}

impl RedMetrics {
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series: max_series.max(1),
            series: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, mut pair: ServicePair, span: &Span) {
        if !self.series.contains_key(&pair) && self.series.len() >= self.max_series {
            pair.service = OTHER.to_string();
            pair.peer = OTHER.to_string();
        }
        let red = self.series.entry(pair).or_default();
        let seconds = span.duration_ns() as f64 / 1e9;
        red.requests += 1;
        if span.is_error() {
            red.errors += 1;
        }
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            red.buckets[i] += 1;
        }
        red.sum_seconds += seconds;
    }

    pub fn get(&self, pair: &ServicePair) -> Option<&Red> {
        self.series.get(pair)
    }

    pub fn export(&self, out: &mut MetricSet) {
        let labels = |p: &ServicePair| {
            vec![
                ("role", p.role.to_string()),
                ("protocol", p.protocol.to_string()),
                ("service", p.service.clone()),
                ("peer", p.peer.clone()),
            ]
        };
        let requests = out.counter(
            "huatuo_bamai_nettrace_requests_total",
            "Request/response exchanges seen on TCP connections, per role (client, server), protocol (http, tcp), local service and peer; cumulative.",
        );
        for (pair, red) in &self.series {
            requests.push(labels(pair), red.requests as f64);
        }
        let errors = out.counter(
            "huatuo_bamai_nettrace_errors_total",
            "Exchanges that failed: HTTP status >= 400 on a client, >= 500 on a server, or no response before the connection closed or the response timeout; cumulative.",
        );
        for (pair, red) in &self.series {
            errors.push(labels(pair), red.errors as f64);
        }
        let duration = out.histogram(
            "huatuo_bamai_nettrace_duration_seconds",
            "Request's first byte to response's first byte, as the client sent/received them or the server received/sent them.",
        );
        for (pair, red) in &self.series {
            let buckets: Vec<(f64, u64)> = BUCKETS.iter().copied().zip(red.buckets).collect();
            duration.push_histogram(labels(pair), &buckets, red.sum_seconds, red.requests);
        }
    }
}
