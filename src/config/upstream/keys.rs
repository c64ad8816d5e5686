//! Each upstream key: the key of ours it sets (converted), a note, or `not supported: why`.

use serde_json::json;

use super::{convert, ImportError, Importer, TRACKING};

/// v1-era keys (the first public commit) that upstream renamed, as their current names.
const V1_RENAMES: [(&str, &str); 21] = [
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
        "Tracing.NetRecvLat.ToNetIf",
        "EventTracing.NetRxLatency.Driver2NetRx",
    ),
    (
        "Tracing.NetRecvLat.ToTCPV4",
        "EventTracing.NetRxLatency.Driver2TCP",
    ),
    (
        "Tracing.NetRecvLat.ToUserCopy",
        "EventTracing.NetRxLatency.Driver2Userspace",
    ),
    (
        "Tracing.NetRecvLat.IgnoreHost",
        "EventTracing.NetRxLatency.ExcludedHostNetnamespace",
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

impl Importer<'_> {
    pub(super) fn key(&mut self, key: &str, value: &toml::Value) -> Result<(), ImportError> {
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
        if self.autotracing_key(key, value)? {
            return Ok(());
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
            "Tasks.MaxConcurrent" => {
                let n = self.integer(key, value, 10_000)?;
                if n == 0 {
                    return Err(self.bad(key, "must be at least 1"));
                }
                self.set("tasks.max_concurrent", json!(n), key, value);
            }
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
            "EventTracing.NetRxLatency.Driver2NetRx"
            | "EventTracing.NetRxLatency.Driver2TCP"
            | "EventTracing.NetRxLatency.Driver2Userspace" => {
                let ms = self.integer(key, value, 3_600_000)?;
                if ms == 0 {
                    return Err(self.bad(key, "0 ms: upstream refuses to start with it"));
                }
                let ours = match key.rsplit('.').next() {
                    Some("Driver2NetRx") => "netif_threshold_ms",
                    Some("Driver2TCP") => "tcp_threshold_ms",
                    _ => "usercopy_threshold_ms",
                };
                self.set(
                    &format!("probes.net_rx_latency.{ours}"),
                    json!(ms),
                    key,
                    value,
                );
            }
            "EventTracing.NetRxLatency.ExcludedHostNetnamespace" => {
                let excluded = self.boolean(key, value)?;
                self.set(
                    "probes.net_rx_latency.excluded_host_netns",
                    json!(excluded),
                    key,
                    value,
                );
            }
            "EventTracing.NetRxLatency.ExcludedContainerQos" => {
                let classes = self.strings(key, value)?;
                if let Some(bad) = classes.iter().find(|c| {
                    !["guaranteed", "burstable", "besteffort"].contains(&c.to_lowercase().as_str())
                }) {
                    return Err(self.bad(
                        key,
                        format!("`{bad}` is not guaranteed, burstable or besteffort"),
                    ));
                }
                self.set(
                    "probes.net_rx_latency.excluded_container_qos",
                    json!(classes),
                    key,
                    value,
                );
            }
            "EventTracing.SchedTick.IntervalThreshold" => {
                let threshold = self.integer(key, value, i64::MAX)?;
                if threshold == 0 {
                    return Err(self.bad(key, "0 ns would make every tick interval a gap"));
                }
                self.set(
                    "probes.sched_tick.interval_threshold_ns",
                    json!(threshold),
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
            "MetricCollector.NetdevHW.DeviceList" => {
                // Names, matched whole: one alternation of our `devices` regex.
                let names = self.strings(key, value)?;
                let pattern = names
                    .iter()
                    .map(|n| regex::escape(n))
                    .collect::<Vec<_>>()
                    .join("|");
                self.set("probes.netdev_hw.devices", json!(pattern), key, value);
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
            "not an upstream AutoTracing key this version knows".into()
        } else if key == "EventTracing.IssuesList" {
            format!("known-issue matching is {TRACKING}")
        } else if section("EventTracing.Ras.") {
            format!("ras (hardware error events) is {TRACKING}")
        } else if section("MetricCollector.AscendNPU.") {
            "no Ascend NPU collector".into()
        } else if section("MetricCollector.NetdevDCB.") {
            format!("netdev_dcb (DCB PFC counters) is {TRACKING}")
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
}
