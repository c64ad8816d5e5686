//! netdev: per-device counters of `/proc/<pid>/net/dev`, for the host network namespace (pid 1,
//! as upstream) → `huatuo_bamai_netdev_<stat>_total{device}` and for each container's namespace
//! (its init pid) → `huatuo_bamai_netdev_container_<stat>_total{<container labels>,device}`.
//! Containers on the host network are skipped (see [`netns`]).

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::file;
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::netns;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "netdev";

/// The columns of `/proc/net/dev`, in file order, named as upstream.
pub const STATS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errors",
    "receive_dropped",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errors",
    "transmit_dropped",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/1/net/dev -> huatuo_bamai_netdev_<stat>_total{device}; a container's
/// <procfs_root>/<init pid>/net/dev -> huatuo_bamai_netdev_container_<stat>_total (containers on the
/// host network namespace are skipped). Device patterns: exact name, "prefix*" or "re:<regex>"; excluded wins.
pub struct NetdevConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// Devices to export: exact names or prefixes ending in `*`; empty exports every device.
    pub device_included: Vec<String>,
    /// Devices never exported (same syntax); applied after `device_included`.
    pub device_excluded: Vec<String>,
}

impl Default for NetdevConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            device_included: Vec::new(),
            device_excluded: vec!["lo".into(), "docker*".into(), "veth*".into()],
        }
    }
}

impl NetdevConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Prefix)
            .include("device_included", &self.device_included)?
            .exclude("device_excluded", &self.device_excluded)
    }

    fn check(&self) -> Result<(), String> {
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(NetdevConfig, "netdev", NetdevConfig::check);

/// One line of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStats {
    pub device: String,
    /// In [`STATS`] order.
    pub values: [u64; 16],
}

/// Parses `/proc/<pid>/net/dev`: two header lines, then `<device>: <16 counters>`.
pub fn parse_net_dev(text: &str) -> Result<Vec<DeviceStats>, String> {
    let mut lines = text.lines();
    for n in 1..=2 {
        match lines.next() {
            Some(line) if line.contains('|') => {}
            Some(line) => return Err(format!("header line {n} `{line}` lacks `|`")),
            None => return Err(format!("missing header line {n}")),
        }
    }
    let mut devices = Vec::new();
    for (index, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 3;
        let (device, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("line {line_no} `{line}` has no `<device>:`"))?;
        let device = device.trim();
        if device.is_empty() {
            return Err(format!("line {line_no}: empty device name"));
        }
        let mut values = [0u64; 16];
        let mut fields = rest.split_whitespace();
        for (slot, stat) in values.iter_mut().zip(STATS) {
            let raw = fields
                .next()
                .ok_or_else(|| format!("device {device}: missing {stat} (line {line_no})"))?;
            *slot = raw
                .parse()
                .map_err(|_| format!("device {device}: {stat} `{raw}` is not a counter"))?;
        }
        if let Some(extra) = fields.next() {
            return Err(format!(
                "device {device}: unexpected 17th field `{extra}` (line {line_no})"
            ));
        }
        devices.push(DeviceStats {
            device: device.to_string(),
            values,
        });
    }
    Ok(devices)
}

pub struct NetdevProbe {
    ctx: ProbeContext,
    filter: NameFilter,
    warn: WarnOnce,
    host_names: Vec<String>,
    container_names: Vec<String>,
}

impl Probe for NetdevProbe {
    const NAME: &'static str = NAME;
    type Settings = NetdevConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let filter = settings.filter().map_err(invalid_config(NAME))?;
        Ok(Self {
            ctx: ctx.clone(),
            filter,
            warn: WarnOnce::default(),
            host_names: STATS
                .iter()
                .map(|s| format!("huatuo_bamai_netdev_{s}_total"))
                .collect(),
            container_names: STATS
                .iter()
                .map(|s| format!("huatuo_bamai_netdev_container_{s}_total"))
                .collect(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let mut host: Vec<Vec<(Labels, f64)>> = vec![Vec::new(); STATS.len()];
        let mut containers: Vec<Vec<(Labels, f64)>> = vec![Vec::new(); STATS.len()];
        let mut collected = false;
        let mut first_error = None;

        let host_path = netns::host_net_dir(&self.ctx).join("dev");
        match file::read_parsed(NAME, &host_path, parse_net_dev) {
            Ok(devices) => {
                collected = true;
                for dev in devices.iter().filter(|d| self.filter.matches(&d.device)) {
                    for (samples, value) in host.iter_mut().zip(dev.values) {
                        samples.push((vec![("device", dev.device.clone())], value as f64));
                    }
                }
            }
            Err(error) => {
                self.warn.warn_error(&error);
                first_error = Some(error);
            }
        }

        for target in netns::container_netns(&self.ctx) {
            match file::read_parsed(NAME, &target.net_dir.join("dev"), parse_net_dev) {
                Ok(devices) => {
                    collected = true;
                    for dev in devices.iter().filter(|d| self.filter.matches(&d.device)) {
                        let labels = target.container.labels_with(&[("device", &dev.device)]);
                        for (samples, value) in containers.iter_mut().zip(dev.values) {
                            samples.push((labels.clone(), value as f64));
                        }
                    }
                }
                Err(error) => {
                    self.warn.warn_error(&error);
                    first_error.get_or_insert(error);
                }
            }
        }
        self.warn.end_tick();

        for (i, stat) in STATS.iter().enumerate() {
            let family = out.counter(
                &self.host_names[i],
                &format!("Network device statistic {stat} of the host network namespace (/proc/1/net/dev)."),
            );
            for (labels, value) in std::mem::take(&mut host[i]) {
                family.push(labels, value);
            }
        }
        for (i, stat) in STATS.iter().enumerate() {
            let family = out.counter(
                &self.container_names[i],
                &format!("Network device statistic {stat} of the container's network namespace (/proc/<init pid>/net/dev)."),
            );
            for (labels, value) in std::mem::take(&mut containers[i]) {
                family.push(labels, value);
            }
        }

        match first_error {
            Some(error) if !collected => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
