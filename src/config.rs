//! Agent configuration: typed sections, layered defaults → TOML file → `HUATUO_*` environment →
//! command-line flags, strict validation (unknown keys and wrong types name the key and the file),
//! and the live `set KEY VALUE` edit used by the control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::probes::loadavg::LoadavgConfig;
use crate::probes::runqlat::RunqlatConfig;
use crate::probes::softirq::SoftirqConfig;

/// Default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/huatuo/huatuo-bamai.toml";
/// Prefix of environment overrides; nested keys are joined by `__`
/// (`HUATUO_PROBES__SOFTIRQ__ENABLED=false`).
pub const ENV_PREFIX: &str = "HUATUO_";
pub(crate) const TOP_LEVEL_SECTIONS: [&str; 9] = [
    "agent",
    "http",
    "control",
    "supervisor",
    "metrics",
    "containers",
    "events",
    "sampler",
    "probes",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    FileMissing { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid value for `{key}`: {reason}")]
    BadValue { key: String, reason: String },
    #[error("`{key}` cannot be changed while the agent runs; edit the file and restart the agent")]
    Cold { key: String },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        let messages: Vec<String> = err.into_iter().map(|e| describe_error(&e)).collect();
        ConfigError::Invalid(messages.join("; "))
    }
}

/// "`probes.softirq`: unknown field `x`, expected … (in file /etc/huatuo/huatuo-bamai.toml)".
fn describe_error(error: &figment::Error) -> String {
    let key = if error.path.is_empty() {
        "(top level)".to_string()
    } else {
        error.path.join(".")
    };
    let origin = match &error.metadata {
        Some(md) if md.name.contains("environment") => {
            format!(
                "environment variable {ENV_PREFIX}{}",
                error.path.join("__").to_uppercase()
            )
        }
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => format!("file {}", path.display()),
            _ => md.name.to_string(),
        },
        None => "defaults".to_string(),
    };
    format!("`{key}`: {} (in {origin})", error.kind)
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentConfig,
    pub http: HttpConfig,
    pub control: ControlConfig,
    pub supervisor: SupervisorConfig,
    pub metrics: MetricsConfig,
    pub containers: ContainersConfig,
    pub events: EventsConfig,
    pub sampler: SamplerConfig,
    pub probes: ProbesConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// `region` label on every series and event (upstream requires `--region`).
    pub region: String,
    /// `host` label; empty means the kernel hostname.
    pub hostname: String,
    /// tracing filter, e.g. `info` or `huatuo_bamai=debug`.
    pub log_level: String,
    /// Root of procfs; a fixture tree in tests (upstream's `--procfs-prefix`).
    pub procfs_root: PathBuf,
    /// Root of sysfs (cgroupfs is read below `<sysfs_root>/fs/cgroup`).
    pub sysfs_root: PathBuf,
    /// Keep kernel BPF run-time statistics on while the agent runs, so each probe reports its
    /// programs' cost (two clock reads per program run).
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Cap on series per metric family; extra series are dropped and counted.
    pub max_series_per_family: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            max_series_per_family: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// Discover containers from cgroupfs (needed for every `*_container_*` metric).
    pub enabled: bool,
    /// How often cgroupfs is rescanned for new and removed containers.
    pub rescan_interval_ms: u64,
    /// Kubelet read-only API for pod metadata; empty disables it.
    pub kubelet_url: String,
    /// Docker Engine socket for container names and images; empty disables it.
    pub docker_socket: PathBuf,
    /// containerd's task state directory: container names, pods and images from each
    /// container's OCI bundle `<dir>/<namespace>/<id>/config.json` (CRI and nerdctl
    /// annotations), for containers the kubelet does not describe; empty disables it.
    pub containerd_state_dir: PathBuf,
    /// CRI-O's container storage: the same from `<dir>/<id>/userdata/config.json`; empty
    /// disables it.
    pub crio_storage_dir: PathBuf,
    /// Pod label keys copied into the container record (`/containers/json`).
    pub pod_labels: Vec<String>,
    /// Pod annotation keys copied into the container record.
    pub pod_annotations: Vec<String>,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rescan_interval_ms: 2000,
            kubelet_url: "http://127.0.0.1:10255".to_string(),
            docker_socket: PathBuf::from("/var/run/docker.sock"),
            containerd_state_dir: PathBuf::from("/run/containerd/io.containerd.runtime.v2.task"),
            crio_storage_dir: PathBuf::from("/run/containers/storage/overlay-containers"),
            pod_labels: Vec::new(),
            pod_annotations: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// The embedded event store (a redb database file); its directory is created when missing.
    pub store_path: PathBuf,
    /// Documents older than this many days are deleted.
    pub retention_days: u64,
    /// Cap on the stored documents, in MiB; the oldest are deleted first.
    pub max_store_mib: u64,
    /// The Elasticsearch/OpenSearch sink (`[events.elasticsearch]`).
    pub elasticsearch: crate::events::elasticsearch::ElasticsearchConfig,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            store_path: PathBuf::from("/var/lib/huatuo/events.redb"),
            retention_days: 7,
            max_store_mib: 512,
            elasticsearch: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address of `/metrics`, `/healthz`, `/readyz`, `/version`, `/tracers`.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:19704".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix socket of the control actor (mode 0600).
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/huatuo/control.sock"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// First restart delay of a failed actor; doubles on each further failure.
    pub restart_backoff_initial_ms: u64,
    /// Upper bound of the restart delay.
    pub restart_backoff_max_ms: u64,
    /// More than this many restarts within `restart_window_secs` marks the actor `failed`.
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

/// Adaptive sampling: the overhead budget and how the sampler holds it (read every round, so
/// `ctl set sampler.*` applies live).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// Measure the overhead (always, while on) and throttle probes over budget.
    pub enabled: bool,
    /// Overhead allowed: agent CPU + BPF program run time, as a fraction of host CPU.
    pub budget_ratio: f64,
    /// One measurement and decision round every this many ms.
    pub interval_ms: u64,
    /// Throttling aims at this fraction of the budget.
    pub target_fraction: f64,
    /// Relaxing starts below this fraction of the budget ...
    pub relax_below_fraction: f64,
    /// ... held for this many rounds in a row (one relax step each time).
    pub relax_after_rounds: u32,
    /// Rounds in a row over budget before throttling (2 ignores a one-round burst).
    pub throttle_after_rounds: u32,
    /// Largest sampling divisor (keep 1 event in N); 1 disables throttling.
    pub max_divisor: u32,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            budget_ratio: 0.01,
            interval_ms: 1000,
            target_fraction: 0.8,
            relax_below_fraction: 0.5,
            relax_after_rounds: 3,
            throttle_after_rounds: 2,
            max_divisor: 65536,
        }
    }
}

impl SamplerConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.budget_ratio > 0.0 && self.budget_ratio <= 1.0) {
            return Err((
                "sampler.budget_ratio",
                "must be in (0, 1], e.g. 0.01 for 1 % of host CPU".into(),
            ));
        }
        if self.interval_ms < 500 {
            return Err(("sampler.interval_ms", "must be at least 500".into()));
        }
        if !(self.relax_below_fraction > 0.0
            && self.relax_below_fraction < self.target_fraction
            && self.target_fraction <= 1.0)
        {
            return Err((
                "sampler.target_fraction",
                "need 0 < relax_below_fraction < target_fraction <= 1 (the gap is the hysteresis)"
                    .into(),
            ));
        }
        if self.relax_after_rounds == 0 {
            return Err(("sampler.relax_after_rounds", "must be at least 1".into()));
        }
        if self.throttle_after_rounds == 0 {
            return Err(("sampler.throttle_after_rounds", "must be at least 1".into()));
        }
        if !self.max_divisor.is_power_of_two() {
            return Err((
                "sampler.max_divisor",
                "must be a power of two (1 = never throttle, 65536 default)".into(),
            ));
        }
        if self.max_divisor == 0 {
            return Err((
                "sampler.max_divisor",
                "must be at least 1 (1 = never throttle)".into(),
            ));
        }
        Ok(())
    }
}

/// One section per probe; the field name is the probe's name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    pub softirq: SoftirqConfig,
    pub runqlat: RunqlatConfig,
    pub iolatency: crate::probes::iolatency::IolatencyConfig,
    pub loadavg: LoadavgConfig,
    pub memory_reclaim: crate::probes::memory_reclaim::MemoryReclaimConfig,
    pub cpu_util: crate::probes::cpu_util::CpuUtilConfig,
    pub cpu_stat: crate::probes::cpu_stat::CpuStatConfig,
    pub memory_vmstat: crate::probes::memory_vmstat::MemoryVmstatConfig,
    pub memory_events: crate::probes::memory_events::MemoryEventsConfig,
    pub memory_buddyinfo: crate::probes::memory_buddyinfo::MemoryBuddyinfoConfig,
    pub netdev: crate::probes::netdev::NetdevConfig,
    pub netstat: crate::probes::netstat::NetstatConfig,
    pub sockstat: crate::probes::sockstat::SockstatConfig,
    pub arp: crate::probes::arp::ArpConfig,
    pub diskio: crate::probes::diskio::DiskioConfig,
    pub mountpoint: crate::probes::mountpoint::MountpointConfig,
    pub pressure: crate::probes::pressure::PressureConfig,
    pub qdisc: crate::probes::qdisc::QdiscConfig,
    pub hungtask: crate::probes::hungtask::HungtaskConfig,
    pub oom: crate::probes::oom::OomConfig,
    pub dropwatch: crate::probes::dropwatch::DropwatchConfig,
}

/// What every probe section offers the shared probe machinery.
pub trait ProbeSettings: Clone + PartialEq + Serialize + Send + Sync + 'static {
    fn enabled(&self) -> bool;
    /// Period of the probe's `Tick`: map reads / file reads and the BPF link check.
    fn interval(&self) -> Duration;
    /// Checks beyond types (ranges, consistency).
    fn validate(&self) -> Result<(), String>;
}

/// Implements [`ProbeSettings`] for a probe section with `enabled: bool` and `interval_ms: u64`
/// fields; an optional second argument is a `fn(&Self) -> Result<(), String>` of further checks.
#[macro_export]
macro_rules! probe_settings {
    ($ty:ty) => {
        $crate::probe_settings!($ty, |_: &$ty| Ok(()));
    };
    ($ty:ty, $extra:expr) => {
        impl $crate::config::ProbeSettings for $ty {
            fn enabled(&self) -> bool {
                self.enabled
            }
            fn interval(&self) -> std::time::Duration {
                std::time::Duration::from_millis(self.interval_ms)
            }
            fn validate(&self) -> Result<(), String> {
                $crate::config::check_interval_ms(self.interval_ms)?;
                let extra: fn(&$ty) -> Result<(), String> = $extra;
                extra(self)
            }
        }
    };
}

/// Shortest tick a probe may ask for: keeps map reads and link checks cheap.
pub fn check_interval_ms(interval_ms: u64) -> Result<(), String> {
    if interval_ms < 100 {
        return Err(format!(
            "interval_ms must be at least 100 (got {interval_ms})"
        ));
    }
    Ok(())
}

/// Overrides from command-line flags, the last layer.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub region: Option<String>,
    pub listen: Option<String>,
    pub control_socket: Option<PathBuf>,
    pub log_level: Option<String>,
    pub procfs_root: Option<PathBuf>,
    pub sysfs_root: Option<PathBuf>,
    pub disable: Vec<String>,
}

/// Where the configuration came from, kept so `reload` can rebuild it the same way.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// True when the path was given explicitly (then a missing file is an error).
    pub explicit: bool,
    pub flags: FlagOverrides,
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if self.path.exists() {
            figment = figment.merge(Toml::file_exact(&self.path));
        } else if self.explicit {
            return Err(ConfigError::FileMissing {
                path: self.path.clone(),
            });
        }
        figment = figment.merge(env_provider());
        figment = figment.merge(Serialized::defaults(self.flags_dict()?));
        let config: Config = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    fn flags_dict(&self) -> Result<Dict, ConfigError> {
        let flags = &self.flags;
        let mut pairs: Vec<(String, Value)> = Vec::new();
        if let Some(region) = &flags.region {
            pairs.push(("agent.region".into(), Value::from(region.clone())));
        }
        if let Some(level) = &flags.log_level {
            pairs.push(("agent.log_level".into(), Value::from(level.clone())));
        }
        if let Some(listen) = &flags.listen {
            pairs.push(("http.listen".into(), Value::from(listen.clone())));
        }
        if let Some(root) = &flags.procfs_root {
            pairs.push((
                "agent.procfs_root".into(),
                Value::from(root.display().to_string()),
            ));
        }
        if let Some(root) = &flags.sysfs_root {
            pairs.push((
                "agent.sysfs_root".into(),
                Value::from(root.display().to_string()),
            ));
        }
        if let Some(socket) = &flags.control_socket {
            pairs.push((
                "control.socket".into(),
                Value::from(socket.display().to_string()),
            ));
        }
        for name in &flags.disable {
            if !crate::probes::registry().iter().any(|p| p.name == name) {
                return Err(ConfigError::BadValue {
                    key: "--disable".into(),
                    reason: format!("unknown probe `{name}`; known: {}", probe_names()),
                });
            }
            pairs.push((format!("probes.{name}.enabled"), Value::from(false)));
        }
        let mut dict = Dict::new();
        for (key, value) in pairs {
            insert_dotted(&mut dict, &key, value);
        }
        Ok(dict)
    }
}

fn env_provider() -> Env {
    // Only nested keys of known sections: HUATUO_REQUIRE_BPF and friends are not config.
    Env::prefixed(ENV_PREFIX)
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            TOP_LEVEL_SECTIONS
                .iter()
                .any(|section| key.starts_with(&format!("{section}__")))
        })
        .split("__")
}

fn probe_names() -> String {
    crate::probes::registry()
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert_dotted(dict: &mut Dict, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut current = dict;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return;
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::from(Dict::new()));
        if !matches!(entry, Value::Dict(..)) {
            *entry = Value::from(Dict::new());
        }
        let Value::Dict(_, next) = entry else { return };
        current = next;
    }
}

/// Keys whose change needs a restart of the whole agent (listeners, global labels).
const COLD_KEY_PREFIXES: [&str; 9] = [
    "agent.bpf_stats",
    "agent.region",
    "agent.hostname",
    "agent.procfs_root",
    "agent.sysfs_root",
    "http.",
    "control.",
    "containers.",
    "events.",
];

pub fn is_cold_key(key: &str) -> bool {
    COLD_KEY_PREFIXES
        .iter()
        .any(|prefix| key == prefix.trim_end_matches('.') || key.starts_with(prefix))
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| ConfigError::BadValue {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        if self.agent.region.trim().is_empty() {
            return Err(bad("agent.region", "must not be empty"));
        }
        if let Err(reason) = crate::telemetry::parse_log_filter(&self.agent.log_level) {
            return Err(bad("agent.log_level", &reason));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "http.listen",
                &format!(
                    "`{}` is not an address like 0.0.0.0:19704",
                    self.http.listen
                ),
            ));
        }
        if self.control.socket.as_os_str().is_empty() {
            return Err(bad("control.socket", "must not be empty"));
        }
        if self.events.store_path.as_os_str().is_empty() {
            return Err(bad("events.store_path", "must not be empty"));
        }
        if self.events.retention_days == 0 {
            return Err(bad("events.retention_days", "must be at least 1"));
        }
        if self.events.max_store_mib == 0 {
            return Err(bad("events.max_store_mib", "must be at least 1"));
        }
        if let Err((key, reason)) = self.events.elasticsearch.validate() {
            return Err(bad(&format!("events.elasticsearch.{key}"), &reason));
        }
        if self.metrics.max_series_per_family == 0 {
            return Err(bad("metrics.max_series_per_family", "must be > 0"));
        }
        if self.containers.rescan_interval_ms < 100 {
            return Err(bad("containers.rescan_interval_ms", "must be at least 100"));
        }
        let url = &self.containers.kubelet_url;
        if !url.is_empty() && !url.starts_with("http://") {
            return Err(bad(
                "containers.kubelet_url",
                &format!("`{url}`: only http:// (the kubelet read-only port) is supported; empty disables it"),
            ));
        }
        let sup = &self.supervisor;
        if sup.restart_backoff_initial_ms == 0 {
            return Err(bad("supervisor.restart_backoff_initial_ms", "must be > 0"));
        }
        if sup.restart_backoff_max_ms < sup.restart_backoff_initial_ms {
            return Err(bad(
                "supervisor.restart_backoff_max_ms",
                "must be >= restart_backoff_initial_ms",
            ));
        }
        if sup.restart_window_secs == 0 {
            return Err(bad("supervisor.restart_window_secs", "must be > 0"));
        }
        if let Err((key, reason)) = self.sampler.validate() {
            return Err(bad(key, &reason));
        }
        for entry in crate::probes::registry() {
            if let Err(reason) = (entry.validate)(self) {
                return Err(ConfigError::BadValue {
                    key: format!("probes.{}", entry.name),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Returns a copy with `key` (dotted, e.g. `probes.softirq.enabled`) set to `raw`, validated as a
    /// whole. `raw` is read as a TOML value (`true`, `5`, `"text"`); bare words are strings.
    pub fn with_key(&self, key: &str, raw: &str) -> Result<Config, ConfigError> {
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ConfigError::BadValue {
                key: key.to_string(),
                reason: "expected a dotted key such as probes.softirq.enabled".into(),
            });
        }
        if is_cold_key(key) {
            return Err(ConfigError::Cold {
                key: key.to_string(),
            });
        }
        let value = parse_value(raw);
        let mut overlay = Dict::new();
        insert_dotted(&mut overlay, key, value);
        let merged: Config = Figment::from(Serialized::defaults(self))
            .merge(Serialized::defaults(overlay))
            .extract()
            .map_err(|e| ConfigError::BadValue {
                key: key.to_string(),
                reason: e
                    .into_iter()
                    .map(|e| e.kind.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        merged.validate()?;
        Ok(merged)
    }

    /// Dotted keys whose values differ between two configs and need an agent restart.
    pub fn cold_changes(&self, other: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.agent.region != other.agent.region {
            changed.push("agent.region");
        }
        if self.agent.hostname != other.agent.hostname {
            changed.push("agent.hostname");
        }
        if self.agent.bpf_stats != other.agent.bpf_stats {
            changed.push("agent.bpf_stats");
        }
        if self.agent.procfs_root != other.agent.procfs_root {
            changed.push("agent.procfs_root");
        }
        if self.agent.sysfs_root != other.agent.sysfs_root {
            changed.push("agent.sysfs_root");
        }
        if self.containers != other.containers {
            changed.push("containers");
        }
        if self.http != other.http {
            changed.push("http");
        }
        if self.control != other.control {
            changed.push("control");
        }
        if self.events != other.events {
            changed.push("events");
        }
        changed
    }
}

fn parse_value(raw: &str) -> Value {
    let raw = raw.trim();
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .and_then(|value| value.try_into::<Value>().ok())
        .unwrap_or_else(|| Value::from(raw.to_string()))
}

/// Resolves the config path from the flag (explicit) or the default location.
pub fn source_from(path: Option<&Path>, flags: FlagOverrides) -> ConfigSource {
    match path {
        Some(path) => ConfigSource {
            path: path.to_path_buf(),
            explicit: true,
            flags,
        },
        None => ConfigSource {
            path: PathBuf::from(DEFAULT_CONFIG_PATH),
            explicit: false,
            flags,
        },
    }
}

#[cfg(test)]
mod tests;
