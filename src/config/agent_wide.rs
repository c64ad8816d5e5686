//! Agent-wide sections: settings of the process itself rather than of one part.

use std::path::PathBuf;
use std::time::Duration;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use super::section::{Invalid, Live, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Process-wide settings.
pub struct AgentConfig {
    /// `region` label on every series and event. [restart]
    pub region: String,
    /// `host` label; empty = the kernel hostname. [restart]
    pub hostname: String,
    /// Log filter (tracing EnvFilter syntax): "info", "debug", "huatuo_bamai=debug,info". RUST_LOG wins.
    pub log_level: String,
    /// Roots of procfs and sysfs (cgroupfs is read at <sysfs_root>/fs/cgroup); point them at a
    /// fixture tree to test collectors. [restart]
    pub procfs_root: PathBuf,
    pub sysfs_root: PathBuf,
    /// Keep kernel BPF run-time statistics on while the agent runs (per-program cost in
    /// huatuo_bamai_bpf_prog_run_seconds_total); costs two clock reads per program run. [restart]
    pub bpf_stats: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            region: "default".to_string(),
            hostname: String::new(),
            log_level: "info".to_string(),
            procfs_root: PathBuf::from("/proc"),
            sysfs_root: PathBuf::from("/sys"),
            bpf_stats: true,
        }
    }
}

/// Checks a log filter expression without installing it.
pub fn parse_log_filter(filter: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("invalid log filter `{filter}`: {e}"))
}

impl Section for AgentConfig {
    const PATH: &'static str = "agent";
    // log_level applies live; the other keys are listed in `COLD_AGENT_KEYS`.
    const LIVE: Live = Live::ReadLive;

    fn validate(&self) -> Result<(), Invalid> {
        if self.region.trim().is_empty() {
            return Err(Invalid::field("region", "must not be empty"));
        }
        parse_log_filter(&self.log_level).map_err(|reason| Invalid::field("log_level", reason))?;
        Ok(())
    }
}

/// Keys of `[agent]` that need an agent restart.
pub(crate) const COLD_AGENT_KEYS: [&str; 5] = [
    "agent.bpf_stats",
    "agent.region",
    "agent.hostname",
    "agent.procfs_root",
    "agent.sysfs_root",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// The HTTP server.
pub struct HttpConfig {
    /// /metrics, /healthz, /readyz, /version, /tracers. [restart]
    pub listen: String,
    /// Open connections at most; one more is closed at once (and counted in
    /// huatuo_bamai_http_connections_rejected_total). [restart]
    pub max_connections: usize,
    /// A client must send a request's headers within this many milliseconds of connecting or of
    /// its previous request, or its connection is closed (slow clients cannot hold slots). [restart]
    pub header_read_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:19704".to_string(),
            max_connections: 256,
            header_read_timeout_ms: 10_000,
        }
    }
}

impl Section for HttpConfig {
    const PATH: &'static str = "http";
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(Invalid::field(
                "listen",
                format!("`{}` is not an address like 0.0.0.0:19704", self.listen),
            ));
        }
        if self.max_connections == 0 {
            return Err(Invalid::field("max_connections", "must be at least 1"));
        }
        if self.header_read_timeout_ms == 0 {
            return Err(Invalid::field(
                "header_read_timeout_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// The control socket (`huatuo-bamai ctl`).
pub struct ControlConfig {
    /// Control socket (mode 0600). [restart]
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/huatuo/control.sock"),
        }
    }
}

impl Section for ControlConfig {
    const PATH: &'static str = "control";
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        if self.socket.as_os_str().is_empty() {
            return Err(Invalid::field("socket", "must not be empty"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Restarts of failed actors.
pub struct SupervisorConfig {
    /// A failed actor restarts after 1 s, then 2 s, 4 s ... up to restart_backoff_max_ms.
    pub restart_backoff_initial_ms: u64,
    pub restart_backoff_max_ms: u64,
    /// More than max_restarts restarts within restart_window_secs marks the actor `failed`
    /// (`huatuo-bamai ctl enable NAME` retries it).
    pub max_restarts: u32,
    pub restart_window_secs: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            restart_backoff_initial_ms: 1000,
            restart_backoff_max_ms: 30_000,
            max_restarts: 5,
            restart_window_secs: 60,
        }
    }
}

impl SupervisorConfig {
    pub fn backoff_initial(&self) -> Duration {
        Duration::from_millis(self.restart_backoff_initial_ms)
    }
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.restart_backoff_max_ms)
    }
    pub fn restart_window(&self) -> Duration {
        Duration::from_secs(self.restart_window_secs)
    }
}

impl Section for SupervisorConfig {
    const PATH: &'static str = "supervisor";
    const LIVE: Live = Live::ReadLive;

    fn validate(&self) -> Result<(), Invalid> {
        if self.restart_backoff_initial_ms == 0 {
            return Err(Invalid::field("restart_backoff_initial_ms", "must be > 0"));
        }
        if self.restart_backoff_max_ms < self.restart_backoff_initial_ms {
            return Err(Invalid::field(
                "restart_backoff_max_ms",
                "must be >= restart_backoff_initial_ms",
            ));
        }
        if self.restart_window_secs == 0 {
            return Err(Invalid::field("restart_window_secs", "must be > 0"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// The metric store behind /metrics.
pub struct MetricsConfig {
    /// Cap on series per metric family (e.g. per-container families on a huge host); extra series
    /// are dropped, counted in huatuo_bamai_metric_series_dropped_total{family} and logged once.
    pub max_series_per_family: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            max_series_per_family: 10_000,
        }
    }
}

impl Section for MetricsConfig {
    const PATH: &'static str = "metrics";
    const LIVE: Live = Live::ReadLive;

    fn validate(&self) -> Result<(), Invalid> {
        if self.max_series_per_family == 0 {
            return Err(Invalid::field("max_series_per_family", "must be > 0"));
        }
        Ok(())
    }
}
