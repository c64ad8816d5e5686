//! `[profiling.pyroscope]`: where continuous profile windows are pushed, as whom, and how many
//! wait while the server is unreachable.

use std::collections::BTreeMap;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::config::{Invalid, Live, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Push every continuous profile window (the profile probe's) to a Pyroscope server: POST
/// /ingest with format=pprof and the name `<application_name>.<cpu|offcpu>{host=…,container=…}`,
/// one request per kind and container. While the server is unreachable the newest
/// `queue_windows` windows wait in memory; older ones are dropped and counted
/// (huatuo_bamai_pyroscope_dropped_total). Extra labels: a `[profiling.pyroscope.labels]`
/// table (`env = "prod"`). Environment: HUATUO_PROFILING__PYROSCOPE__<KEY>.
pub struct PyroscopeConfig {
    /// Push profile windows to Pyroscope.
    pub enabled: bool,
    /// Base URL of the Pyroscope server (or of Grafana Alloy's pyroscope.receive_http).
    pub address: String,
    /// Application name; Pyroscope's service_name is `<application_name>.cpu` / `.offcpu`.
    pub application_name: String,
    /// Labels added to every push besides host, container and pod.
    pub labels: BTreeMap<String, String>,
    /// Timeout of one push (connect included).
    pub timeout_ms: u64,
    /// Windows kept for retry while the server is unreachable (each window is one push per
    /// kind and container); past it the oldest window is dropped and counted.
    pub queue_windows: usize,
    /// First delay before a failed push is retried; doubles up to `retry_backoff_max_ms`.
    pub retry_backoff_initial_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Basic authentication (Grafana Cloud: the instance id); "" sends none.
    pub username: String,
    /// Password of `username` (masked in `check-config`).
    pub password: String,
    /// Tenant of a multi-tenant Pyroscope, sent as X-Scope-OrgID; "" sends none.
    pub tenant_id: String,
}

impl Default for PyroscopeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: "http://127.0.0.1:4040".to_string(),
            application_name: "huatuo-bamai".to_string(),
            labels: BTreeMap::new(),
            timeout_ms: 10_000,
            queue_windows: 30,
            retry_backoff_initial_ms: 1000,
            retry_backoff_max_ms: 30_000,
            username: String::new(),
            password: String::new(),
            tenant_id: String::new(),
        }
    }
}

impl Section for PyroscopeConfig {
    const PATH: &'static str = "profiling.pyroscope";
    const LIVE: Live = Live::RestartPart;

    fn validate(&self) -> Result<(), Invalid> {
        self.check()
            .map_err(|(field, reason)| Invalid::field(field, reason))
    }
}

/// Labels the pusher sets itself.
const RESERVED_LABELS: [&str; 3] = ["host", "container", "pod"];

impl PyroscopeConfig {
    /// Checks the section; the error names the key (below `profiling.pyroscope.`) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let url = reqwest::Url::parse(&self.address).map_err(|e| {
            (
                "address",
                format!(
                    "`{}` is not a URL like http://127.0.0.1:4040: {e}",
                    self.address
                ),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err((
                "address",
                format!("`{}`: an http:// or https:// URL with a host", self.address),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(("address", "no query or fragment, only the base URL".into()));
        }
        if self.application_name.is_empty()
            || !self
                .application_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        {
            return Err((
                "application_name",
                format!(
                    "`{}`: letters, digits and . _ - / only (Pyroscope parses it with the labels)",
                    self.application_name
                ),
            ));
        }
        for (name, value) in &self.labels {
            if !is_label_name(name) {
                return Err((
                    "labels",
                    format!("`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(("labels", format!("`{name}` is set by the agent itself")));
            }
            if value.is_empty() || value.contains(['{', '}', ',', '=', '"']) {
                return Err((
                    "labels",
                    format!("`{name}`: value `{value}` must be non-empty without {{ }} , = \""),
                ));
            }
        }
        if self.timeout_ms < 100 {
            return Err(("timeout_ms", "must be at least 100".into()));
        }
        if self.queue_windows == 0 || self.queue_windows > 10_000 {
            return Err((
                "queue_windows",
                format!("must be 1 to 10000 (got {})", self.queue_windows),
            ));
        }
        if self.retry_backoff_initial_ms == 0 {
            return Err(("retry_backoff_initial_ms", "must be > 0".into()));
        }
        if self.retry_backoff_max_ms < self.retry_backoff_initial_ms {
            return Err((
                "retry_backoff_max_ms",
                "must be >= retry_backoff_initial_ms".into(),
            ));
        }
        if self.username.is_empty() && !self.password.is_empty() {
            return Err(("password", "is set but `username` is empty".into()));
        }
        Ok(())
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_keys_are_named() {
        assert_eq!(PyroscopeConfig::default().check(), Ok(()));
        let bad = |edit: fn(&mut PyroscopeConfig)| {
            let mut c = PyroscopeConfig::default();
            edit(&mut c);
            c.check().err().map(|(field, _)| field)
        };
        assert_eq!(
            bad(|c| c.address = "localhost:4040".into()),
            Some("address")
        );
        assert_eq!(
            bad(|c| c.application_name = "a{b}".into()),
            Some("application_name")
        );
        assert_eq!(
            bad(|c| {
                c.labels.insert("host".into(), "x".into());
            }),
            Some("labels")
        );
        assert_eq!(
            bad(|c| {
                c.labels.insert("env".into(), "a,b".into());
            }),
            Some("labels")
        );
        assert_eq!(bad(|c| c.queue_windows = 0), Some("queue_windows"));
        assert_eq!(bad(|c| c.password = "p".into()), Some("password"));
    }
}
