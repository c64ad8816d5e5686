//! `huatuo-bamai config import`: upstream HUATUO's `huatuo-bamai.conf` (TOML with CamelCase keys,
//! `cmd/huatuo-bamai/config/config.go` and `core/*/config.go` upstream) turned into our
//! configuration. Every key of the file is mapped to ours or reported as not supported, with the
//! reason; keys the file does not set keep our defaults, except the probes: upstream runs every
//! tracer not in `BlackList`, so each probe of ours with an upstream counterpart is on unless
//! all its counterparts are blacklisted.

mod convert;
mod tracers;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::template::{self, Setting};
use super::{agent_wide_sections, Config, ConfigError, SectionSpec};

pub use convert::pcap_to_drop_filter;
pub use tracers::{tracer, upstream_names, Tracer};

/// Where upstream features we do not have yet are tracked.
const TRACKING: &str = "not implemented yet (issue 11)";

/// Top-level keys of upstream's file, v2 and the v1-era names: a file with these is upstream's.
const UPSTREAM_TOP_LEVEL: [&str; 13] = [
    "BlackList",
    "Log",
    "Runtime",
    "HTTPServer",
    "Tasks",
    "Storage",
    "Pod",
    "AutoTracing",
    "EventTracing",
    "MetricCollector",
    "LogLevel",
    "RuntimeCgroup",
    "Tracing",
];

/// v1-era keys (the first public commit) that upstream renamed, as their current names.
const V1_RENAMES: [(&str, &str); 17] = [
    ("LogLevel", "Log.Level"),
    ("Tracing.BlackList", "BlackList"),
    ("MetricCollector.BlackList", "BlackList"),
    ("Storage.ES.Address", "Storage.Elasticsearch.Address"),
    ("Storage.ES.Username", "Storage.Elasticsearch.Username"),
    ("Storage.ES.Password", "Storage.Elasticsearch.Password"),
    ("Storage.ES.Index", "Storage.Elasticsearch.Index"),
    (
        "Storage.LocalFile.RotationSize",
        "Storage.LocalFile.RotationSizeMiB",
    ),
    (
        "Storage.LocalFile.MaxRotation",
        "Storage.LocalFile.MaxRotatedFiles",
    ),
    (
        "Tracing.MemoryReclaim.Deltath",
        "EventTracing.MemoryReclaim.BlockedThreshold",
    ),
    (
        "MetricCollector.Netdev.IgnoredDevices",
        "MetricCollector.NetdevStats.DeviceExcluded",
    ),
    (
        "MetricCollector.Netdev.EnableNetlink",
        "MetricCollector.NetdevStats.EnableNetlink",
    ),
    (
        "MetricCollector.Qdisc.IgnoredDevices",
        "MetricCollector.Qdisc.DeviceExcluded",
    ),
    (
        "MetricCollector.Vmstat.IncludedMetrics",
        "MetricCollector.Vmstat.IncludedOnHost",
    ),
    (
        "MetricCollector.Vmstat.ExcludedMetrics",
        "MetricCollector.Vmstat.ExcludedOnHost",
    ),
    (
        "MetricCollector.MemoryEvents.IncludedMetrics",
        "MetricCollector.MemoryEvents.Included",
    ),
    (
        "MetricCollector.MountPointStat.IncludedMountPoints",
        "MetricCollector.MountPointStat.MountPointsIncluded",
    ),
];

/// v1-era `MetricCollector.MemoryStat` became the container half of `Vmstat`.
const V1_MEMORY_STAT: [(&str, &str); 2] = [
    (
        "MetricCollector.MemoryStat.IncludedMetrics",
        "MetricCollector.Vmstat.IncludedOnContainer",
    ),
    (
        "MetricCollector.MemoryStat.ExcludedMetrics",
        "MetricCollector.Vmstat.ExcludedOnContainer",
    ),
];

/// Why an upstream file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid TOML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: `{key}`: {reason}", path.display())]
    BadValue {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{}: the imported configuration does not load: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
}

/// An upstream key without a counterpart here, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    pub key: String,
    pub why: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not supported: {}: {}", self.key, self.why)
    }
}

/// The result of an import: our keys to set, upstream keys we cannot honour, and notes about
/// keys that need nothing here (a default that is ours too, a blacklisted feature we lack).
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub settings: Vec<Setting>,
    pub unsupported: Vec<Unsupported>,
    pub notes: Vec<String>,
    /// The configuration the settings load to (checked by our loader).
    pub config: Config,
    /// The TOML file to write: our generated file with the settings and the report as comments.
    pub text: String,
}

/// Reads and imports an upstream configuration file.
pub fn import_file(path: &Path, specs: &[SectionSpec]) -> Result<Imported, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    import_str(path, &text, specs)
}

/// Imports upstream configuration text (`path` names it in messages and in the output).
pub fn import_str(path: &Path, text: &str, specs: &[SectionSpec]) -> Result<Imported, ImportError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((0, 0));
        ImportError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let root = toml::Value::Table(table);
    let mut leaves = Vec::new();
    flatten("", &root, &mut leaves);
    let mut importer = Importer::new(path, specs);
    for (key, value) in &leaves {
        importer.key(key, value)?;
    }
    importer.finish()
}

/// Top-level keys of an upstream file in `table` (empty when it is not one).
pub fn upstream_keys(table: &toml::Table) -> Vec<String> {
    table
        .keys()
        .filter(|k| UPSTREAM_TOP_LEVEL.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
    (line, column)
}

/// Every leaf of the tree as (dotted key, value); arrays of tables are leaves.
fn flatten<'a>(prefix: &str, value: &'a toml::Value, out: &mut Vec<(String, &'a toml::Value)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf)),
    }
}

#[derive(Default)]
struct Elasticsearch {
    address: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

struct Importer<'a> {
    path: &'a Path,
    specs: &'a [SectionSpec],
    settings: Vec<Setting>,
    unsupported: Vec<Unsupported>,
    notes: Vec<String>,
    blacklist: Vec<String>,
    elasticsearch: Elasticsearch,
}

impl<'a> Importer<'a> {
    fn new(path: &'a Path, specs: &'a [SectionSpec]) -> Self {
        Self {
            path,
            specs,
            settings: Vec::new(),
            unsupported: Vec::new(),
            notes: Vec::new(),
            blacklist: Vec::new(),
            elasticsearch: Elasticsearch::default(),
        }
    }

    fn bad(&self, key: &str, reason: impl Into<String>) -> ImportError {
        ImportError::BadValue {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn unsupported(&mut self, key: &str, why: impl Into<String>) {
        self.unsupported.push(Unsupported {
            key: key.to_string(),
            why: why.into(),
        });
    }

    fn note(&mut self, key: &str, what: impl std::fmt::Display) {
        self.notes.push(format!("{key}: {what}"));
    }

    /// Sets our `ours` (when its section exists in this build) from upstream `key`.
    fn set(&mut self, ours: &str, value: Value, key: &str, upstream: &toml::Value) {
        let section = ours.rsplit_once('.').map_or(ours, |(section, _)| section);
        let known = agent_wide_sections()
            .iter()
            .chain(self.specs.iter())
            .any(|s| s.path == section);
        if !known {
            self.unsupported(key, format!("`[{section}]` is not part of this build"));
            return;
        }
        // Long values (the vmstat regexes) are in the setting itself; the comment names the key.
        let shown = upstream.to_string();
        let comment = if shown.len() <= 48 {
            format!("Imported from upstream {key} = {shown}")
        } else {
            format!("Imported from upstream {key}")
        };
        match self.settings.iter_mut().find(|s| s.key == ours) {
            Some(existing) => {
                existing.value = value;
                existing.comment.push_str(&format!("; {comment}"));
            }
            None => self.settings.push(Setting {
                key: ours.to_string(),
                value,
                comment,
            }),
        }
    }

    fn string<'v>(&self, key: &str, value: &'v toml::Value) -> Result<&'v str, ImportError> {
        value
            .as_str()
            .ok_or_else(|| self.bad(key, format!("expected a string, got {value}")))
    }

    fn integer(&self, key: &str, value: &toml::Value, max: i64) -> Result<i64, ImportError> {
        match value.as_integer() {
            Some(n) if (0..=max).contains(&n) => Ok(n),
            Some(n) => Err(self.bad(key, format!("{n} is outside 0..={max}"))),
            None => Err(self.bad(key, format!("expected an integer, got {value}"))),
        }
    }

    fn boolean(&self, key: &str, value: &toml::Value) -> Result<bool, ImportError> {
        value
            .as_bool()
            .ok_or_else(|| self.bad(key, format!("expected true or false, got {value}")))
    }

    fn strings(&self, key: &str, value: &toml::Value) -> Result<Vec<String>, ImportError> {
        let items = value
            .as_array()
            .ok_or_else(|| self.bad(key, format!("expected a list of strings, got {value}")))?;
        items
            .iter()
            .map(|item| self.string(key, item).map(str::to_string))
            .collect()
    }

    fn key(&mut self, key: &str, value: &toml::Value) -> Result<(), ImportError> {
        // v1-era names first: imported under their current names.
        let renamed = V1_RENAMES
            .iter()
            .chain(V1_MEMORY_STAT.iter())
            .find(|(old, _)| *old == key)
            .map(|(_, new)| *new);
        if let Some(new) = renamed {
            self.note(
                key,
                format_args!("v1-era key, imported as upstream's {new}"),
            );
            return self.key(new, value);
        }
        let regex = |this: &Self| this.string(key, value).map(convert::regex_list);
        match key {
            "BlackList" => {
                let names = self.strings(key, value)?;
                self.blacklist.extend(names);
            }
            "Log.Level" => {
                let level = self.string(key, value)?.to_ascii_lowercase();
                let ours = match level.as_str() {
                    "debug" | "info" | "warn" | "error" => level.clone(),
                    // We have no panic level; errors are the closest.
                    "panic" => "error".to_string(),
                    _ => {
                        return Err(self.bad(
                            key,
                            format!("`{level}` is not Debug, Info, Warn, Error or Panic"),
                        ))
                    }
                };
                self.set("agent.log_level", json!(ours), key, value);
            }
            "Log.File" => {
                if self.string(key, value)?.is_empty() {
                    self.note(key, "empty: logs go to stderr, as here");
                } else {
                    self.unsupported(
                        key,
                        "the agent logs to stderr only; redirect it (systemd journal, kubectl logs)",
                    );
                }
            }
            "HTTPServer.ListenAddress" => {
                let listen = convert::listen_address(self.string(key, value)?)
                    .map_err(|reason| self.bad(key, reason))?;
                self.set("http.listen", json!(listen), key, value);
            }
            "HTTPServer.MaxEventStreamClients"
            | "HTTPServer.EventStreamKeepAliveIntervalSeconds" => {
                let (fixed, what) = if key.ends_with("Clients") {
                    (100, "at most 100 /v1/events/watch clients")
                } else {
                    (30, "an SSE ping every 30 s")
                };
                if self.integer(key, value, i64::MAX)? == fixed {
                    self.note(key, format_args!("built in here: {what}"));
                } else {
                    self.unsupported(key, format!("fixed here: {what}"));
                }
            }
            "Tasks.MaxConcurrent" => self.unsupported(
                key,
                format!("the /tasks API (tools run as subprocesses) is {TRACKING}"),
            ),
            "Storage.Elasticsearch.Address" => {
                self.elasticsearch.address = Some(self.string(key, value)?.to_string());
            }
            "Storage.Elasticsearch.Username" => {
                self.elasticsearch.username = Some(self.string(key, value)?.to_string());
            }
            "Storage.Elasticsearch.Password" => {
                self.elasticsearch.password = Some(self.string(key, value)?.to_string());
            }
            "Storage.Elasticsearch.Index" => {
                let index = self.string(key, value)?.to_string();
                self.set("events.elasticsearch.index", json!(index), key, value);
            }
            "Storage.LocalFile.Path"
            | "Storage.LocalFile.RotationSizeMiB"
            | "Storage.LocalFile.MaxRotatedFiles" => self.unsupported(
                key,
                "events are kept in the embedded store (events.store_path, events.max_store_mib; \
                 read them with `huatuo-bamai events list` or GET /v1/events), not in JSON files \
                 per tracer",
            ),
            "Pod.KubeletReadOnlyPort" => {
                let port = self.integer(key, value, 65535)?;
                let url = if port == 0 {
                    String::new()
                } else {
                    format!("http://127.0.0.1:{port}")
                };
                self.set("containers.kubelet_url", json!(url), key, value);
            }
            "Pod.KubeletAuthorizedPort" => {
                let port = self.integer(key, value, 65535)?;
                let url = if port == 0 {
                    String::new()
                } else {
                    format!("https://127.0.0.1:{port}")
                };
                self.set("containers.kubelet_https_url", json!(url), key, value);
            }
            "Pod.KubeletClientCertPath" => {
                let cert = self.string(key, value)?.to_string();
                self.set("containers.kubelet_client_cert", json!(cert), key, value);
            }
            "Pod.DockerAPIVersion" => {
                self.string(key, value)?;
                self.unsupported(
                    key,
                    "the Docker Engine is asked without a version prefix (its own current API)",
                );
            }
            "EventTracing.MemoryReclaim.BlockedThreshold" => {
                let ns = self.integer(key, value, i64::MAX)?;
                let ms = (ns + 500_000) / 1_000_000;
                if ns % 1_000_000 != 0 {
                    self.note(key, format_args!("{ns} ns rounded to {ms} ms"));
                }
                self.set(
                    "probes.memory_reclaim.event_threshold_ms",
                    json!(ms),
                    key,
                    value,
                );
            }
            "EventTracing.Netdev.DeviceList" => {
                // Upstream anchors each entry (`^(?:X)$`); an empty list there watches nothing.
                let list: Vec<String> = self
                    .strings(key, value)?
                    .iter()
                    .filter(|entry| !entry.is_empty())
                    .map(|entry| format!("re:^(?:{entry})$"))
                    .collect();
                if list.is_empty() {
                    self.set("probes.netdev_events.enabled", json!(false), key, value);
                    self.note(
                        key,
                        "empty: upstream watches no device; netdev_events disabled",
                    );
                } else {
                    self.set("probes.netdev_events.devices", json!(list), key, value);
                }
            }
            "EventTracing.Dropwatch.Filter" => {
                let filter = self.string(key, value)?;
                match convert::pcap_to_drop_filter(filter) {
                    Ok((protocols, ports)) => {
                        self.set("probes.dropwatch.protocols", json!(protocols), key, value);
                        self.set("probes.dropwatch.ports", json!(ports), key, value);
                    }
                    Err(why) => self.unsupported(
                        key,
                        format!(
                            "pcap filter `{filter}` has no exact equivalent in probes.dropwatch \
                             protocols/ports/reasons: {why}"
                        ),
                    ),
                }
            }
            "EventTracing.Dropwatch.MaxEventsPerSecond" => {
                let rate = self.integer(key, value, u32::MAX.into())?;
                self.set(
                    "probes.dropwatch.max_events_per_second",
                    json!(rate),
                    key,
                    value,
                );
            }
            "EventTracing.Dropwatch.ExcludeContainers" => {
                if self.strings(key, value)?.is_empty() {
                    self.note(key, "empty: nothing to carry over");
                } else {
                    self.unsupported(key, "upstream does not use it either");
                }
            }
            "EventTracing.TCPRetransmit.Filter" => {
                if self.string(key, value)?.is_empty() {
                    self.note(key, "empty: every retransmit, as here");
                } else {
                    self.unsupported(key, "probes.tcp_retransmit has no packet filter");
                }
            }
            "EventTracing.TCPRetransmit.EnableTLP" => {
                if self.boolean(key, value)? {
                    self.unsupported(
                        key,
                        "tail loss probes need a kprobe; probes.tcp_retransmit uses tracepoints",
                    );
                } else {
                    self.note(key, "false: no tail loss probes, as here");
                }
            }
            "EventTracing.TCPRetransmit.MaxEventsPerSecond" => {
                let rate = self.integer(key, value, u32::MAX.into())?;
                self.set(
                    "probes.tcp_retransmit.max_events_per_second",
                    json!(rate),
                    key,
                    value,
                );
            }
            "MetricCollector.NetdevStats.EnableNetlink" => {
                if self.boolean(key, value)? {
                    self.unsupported(key, "probes.netdev reads procfs net/dev only");
                } else {
                    self.note(key, "false: procfs net/dev, as here");
                }
            }
            "MetricCollector.NetdevStats.DeviceIncluded" => {
                let list = regex(self)?;
                self.set("probes.netdev.device_included", json!(list), key, value);
            }
            "MetricCollector.NetdevStats.DeviceExcluded" => {
                let list = regex(self)?;
                self.set("probes.netdev.device_excluded", json!(list), key, value);
            }
            "MetricCollector.Qdisc.DeviceIncluded" => {
                let list = regex(self)?;
                self.set("probes.qdisc.device_included", json!(list), key, value);
            }
            "MetricCollector.Qdisc.DeviceExcluded" => {
                let list = regex(self)?;
                self.set("probes.qdisc.device_excluded", json!(list), key, value);
            }
            "MetricCollector.Vmstat.IncludedOnHost" => {
                let list = regex(self)?;
                self.set(
                    "probes.memory_vmstat.host_included",
                    json!(list),
                    key,
                    value,
                );
            }
            "MetricCollector.Vmstat.ExcludedOnHost" => {
                let list = regex(self)?;
                self.set(
                    "probes.memory_vmstat.host_excluded",
                    json!(list),
                    key,
                    value,
                );
            }
            "MetricCollector.Vmstat.IncludedOnContainer" => {
                let list = regex(self)?;
                self.set(
                    "probes.memory_vmstat.container_included",
                    json!(list),
                    key,
                    value,
                );
            }
            "MetricCollector.Vmstat.ExcludedOnContainer" => {
                let list = regex(self)?;
                self.set(
                    "probes.memory_vmstat.container_excluded",
                    json!(list),
                    key,
                    value,
                );
            }
            "MetricCollector.MemoryEvents.Included" => {
                let list = regex(self)?;
                self.set("probes.memory_events.included", json!(list), key, value);
            }
            "MetricCollector.MemoryEvents.Excluded" => {
                let list = regex(self)?;
                self.set("probes.memory_events.excluded", json!(list), key, value);
            }
            "MetricCollector.Netstat.Included" => {
                let list = regex(self)?;
                self.set("probes.netstat.included", json!(list), key, value);
            }
            "MetricCollector.Netstat.Excluded" => {
                let list = regex(self)?;
                self.set("probes.netstat.excluded", json!(list), key, value);
            }
            "MetricCollector.MountPointStat.MountPointsIncluded" => {
                let regex = self.string(key, value)?;
                match convert::anchored_paths(regex) {
                    Ok(paths) => self.set(
                        "probes.mountpoint.mountpoints_included",
                        json!(paths),
                        key,
                        value,
                    ),
                    Err(why) => self.unsupported(key, why),
                }
            }
            _ => return self.key_without_counterpart(key),
        }
        Ok(())
    }

    /// Keys of upstream features we do not have, and keys upstream does not know.
    fn key_without_counterpart(&mut self, key: &str) -> Result<(), ImportError> {
        let section = |prefix: &str| key.starts_with(prefix);
        let why: String = if section("Runtime.") {
            "no self cgroup limit (upstream's --enable-cgroup); limit the agent with its \
             DaemonSet resources or systemd CPUQuota=/MemoryMax=; probe overhead is capped by \
             [sampler] budget_ratio"
                .into()
        } else if section("AutoTracing.") {
            format!("AutoTracing (cpuidle, cpusys, dload, iotracing, memburst) is {TRACKING}")
        } else if key == "EventTracing.IssuesList" {
            format!("known-issue matching is {TRACKING}")
        } else if section("EventTracing.SchedTick.") {
            format!("sched_tick (long scheduler tick intervals) is {TRACKING}")
        } else if section("EventTracing.NetRxLatency.") {
            format!("net_rx_latency is {TRACKING}")
        } else if section("EventTracing.Ras.") {
            format!("ras (hardware error events) is {TRACKING}")
        } else if section("MetricCollector.AscendNPU.") {
            "no Ascend NPU collector".into()
        } else if section("MetricCollector.NetdevDCB.") {
            format!("netdev_dcb (DCB PFC counters) is {TRACKING}")
        } else if section("MetricCollector.NetdevHW.") {
            format!("netdev_hw (NIC hardware counters) is {TRACKING}")
        } else if section("Tracing.")
            || section("RuntimeCgroup.")
            || section("MetricCollector.MemoryStat.")
        {
            "a v1-era key without a current upstream name; not imported".into()
        } else {
            "not a key of upstream's configuration (upstream refuses unknown keys too)".into()
        };
        self.unsupported(key, why);
        Ok(())
    }

    fn finish_blacklist(&mut self) {
        let blacklist = std::mem::take(&mut self.blacklist);
        for name in &blacklist {
            match tracer(name) {
                Tracer::Probe(_) => {}
                Tracer::Missing => self.note(
                    "BlackList",
                    format_args!("`{name}` has no counterpart here; nothing to disable"),
                ),
                Tracer::Unknown => self.unsupported(
                    "BlackList",
                    format!("`{name}` is not an upstream tracer or collector name"),
                ),
            }
        }
        for (probe, upstream) in tracers::probes_with_counterparts() {
            let Some(spec) = self
                .specs
                .iter()
                .find(|s| s.path.strip_prefix("probes.") == Some(probe))
            else {
                continue;
            };
            let listed: Vec<&str> = upstream
                .iter()
                .copied()
                .filter(|u| blacklist.iter().any(|b| b == u))
                .collect();
            let enabled = listed.len() < upstream.len();
            if !listed.is_empty() && enabled {
                self.unsupported(
                    "BlackList",
                    format!(
                        "{}: here one probe, probes.{probe}, does the work of {}; blacklist all \
                         of them to turn it off",
                        listed.join(", "),
                        upstream.join(", ")
                    ),
                );
            }
            let default = (spec.defaults)()
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if enabled != default {
                let why = if enabled {
                    format!(
                        "not in upstream BlackList ({}): on, as upstream",
                        upstream.join(", ")
                    )
                } else {
                    format!("upstream BlackList names {}", listed.join(", "))
                };
                self.settings.push(Setting {
                    key: format!("probes.{probe}.enabled"),
                    value: json!(enabled),
                    comment: format!("Imported: {why}"),
                });
            }
        }
    }

    fn finish_elasticsearch(&mut self) -> Result<(), ImportError> {
        let es = std::mem::take(&mut self.elasticsearch);
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let set = [&es.address, &es.username, &es.password]
            .into_iter()
            .filter(|v| given(v))
            .count();
        if set == 0 {
            if es.address.is_some() || es.username.is_some() || es.password.is_some() {
                self.note(
                    "Storage.Elasticsearch",
                    "Address, Username, Password empty: no Elasticsearch, as here by default",
                );
            }
            return Ok(());
        }
        if set != 3 {
            return Err(self.bad(
                "Storage.Elasticsearch",
                "Address, Username and Password must be set together (upstream refuses this \
                 file too)",
            ));
        }
        let address = es.address.unwrap_or_default();
        let addresses: Vec<String> = address
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let from = |s: &str| toml::Value::String(s.to_string());
        let key = "Storage.Elasticsearch.Address";
        self.set(
            "events.elasticsearch.enabled",
            json!(true),
            key,
            &from(&address),
        );
        self.set(
            "events.elasticsearch.addresses",
            json!(addresses),
            key,
            &from(&address),
        );
        let username = es.username.unwrap_or_default();
        self.set(
            "events.elasticsearch.username",
            json!(username),
            "Storage.Elasticsearch.Username",
            &from(&username),
        );
        self.set(
            "events.elasticsearch.password",
            json!(es.password.unwrap_or_default()),
            "Storage.Elasticsearch.Password",
            &from("********"),
        );
        Ok(())
    }

    fn finish(mut self) -> Result<Imported, ImportError> {
        self.finish_blacklist();
        self.finish_elasticsearch()?;
        let mut preamble = String::from("\n");
        template::comment(
            &mut preamble,
            &format!(
                "Imported from upstream {} by `huatuo-bamai config import`. Keys the upstream \
                 file does not set keep our defaults.",
                self.path.display()
            ),
        );
        for unsupported in &self.unsupported {
            template::comment(&mut preamble, &unsupported.to_string());
        }
        for note in &self.notes {
            template::comment(&mut preamble, &format!("note: {note}"));
        }
        let text = template::render_with(self.specs, &self.settings, &preamble);
        let config =
            Config::from_toml_str(&text, self.specs.to_vec().into()).map_err(|source| {
                ImportError::Output {
                    path: self.path.to_path_buf(),
                    source,
                }
            })?;
        // Every setting must have landed at its key (a key missing from the template would be
        // silently dropped).
        let tree = config.to_tree();
        for setting in &self.settings {
            let found = setting
                .key
                .split('.')
                .try_fold(&tree, |node, part| node.get(part));
            if found != Some(&setting.value) {
                return Err(ImportError::Output {
                    path: self.path.to_path_buf(),
                    source: ConfigError::BadValue {
                        key: setting.key.clone(),
                        reason: format!(
                            "set to {} but the generated file loads {}",
                            setting.value,
                            found.map_or("nothing".into(), Value::to_string)
                        ),
                    },
                });
            }
        }
        Ok(Imported {
            settings: self.settings,
            unsupported: self.unsupported,
            notes: self.notes,
            config,
            text,
        })
    }
}
