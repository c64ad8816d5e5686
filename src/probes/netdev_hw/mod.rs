//! netdev_hw: packets a NIC dropped in hardware (ring full, no buffer), from each physical
//! device's `<sysfs_root>/class/net/<dev>/statistics/rx_missed_errors` →
//! `huatuo_bamai_netdev_hw_rx_dropped_total{device, driver}` (counter, as upstream). Upstream
//! falls back to `rx_dropped` minus the software drops a kprobe counts when a driver lacks
//! `rx_missed_errors`; without kprobes we export only devices that have it. Off by default, like
//! upstream's blacklisted `netdev_hw`.

use std::path::Path;

use documented::{Documented, DocumentedFieldsOpt};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "netdev_hw";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <sysfs_root>/class/net/<dev>/statistics/rx_missed_errors of physical devices (those with a
/// `device` link) -> huatuo_bamai_netdev_hw_rx_dropped_total{device, driver}.
pub struct NetdevHwConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// Devices to export, a regular expression matched against the whole name (upstream's
    /// `MetricCollector.NetdevHW.DeviceList`); empty = every physical device.
    pub devices: String,
}

impl Default for NetdevHwConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_ms: 5000,
            devices: String::new(),
        }
    }
}

crate::probe_settings!(NetdevHwConfig, "netdev_hw", |c: &NetdevHwConfig| {
    device_filter(&c.devices).map(|_| ())
});

/// `devices` as an anchored regular expression; `None` when empty (every device).
fn device_filter(pattern: &str) -> Result<Option<Regex>, String> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(&format!("^(?:{pattern})$"))
        .map(Some)
        .map_err(|e| format!("devices: not a regular expression: {e}"))
}

/// One physical device's hardware drop counter.
#[derive(Debug, Clone, PartialEq)]
pub struct HwDrops {
    pub device: String,
    pub driver: String,
    pub rx_missed: u64,
}

/// Reads every device under `class_net` that has a `device` link (virtual ones have none) and a
/// readable `statistics/rx_missed_errors`.
pub fn read_hw_drops(class_net: &Path, filter: Option<&Regex>) -> std::io::Result<Vec<HwDrops>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(class_net)? {
        let dir = entry?.path();
        let Some(device) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if filter.is_some_and(|f| !f.is_match(&device)) || !dir.join("device").exists() {
            continue;
        }
        let counter = dir.join("statistics/rx_missed_errors");
        let Some(rx_missed) = std::fs::read_to_string(&counter)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        else {
            continue;
        };
        let driver = std::fs::read_link(dir.join("device/driver"))
            .ok()
            .and_then(|link| link.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        found.push(HwDrops {
            device,
            driver,
            rx_missed,
        });
    }
    found.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(found)
}

pub struct NetdevHwProbe {
    class_net: std::path::PathBuf,
    filter: Option<Regex>,
    warn: WarnOnce,
}

impl Probe for NetdevHwProbe {
    const NAME: &'static str = NAME;
    type Settings = NetdevHwConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        // Validated when the config loaded; a bad pattern cannot reach here.
        let filter = device_filter(&settings.devices).map_err(|reason| ProbeError::Parse {
            probe: NAME,
            path: "probes.netdev_hw.devices".into(),
            reason,
        })?;
        Ok(Self {
            class_net: ctx.sysfs_root.join("class/net"),
            filter,
            warn: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let devices = read_hw_drops(&self.class_net, self.filter.as_ref()).map_err(|source| {
            let error = ProbeError::Read {
                probe: NAME,
                path: self.class_net.display().to_string(),
                source,
            };
            self.warn.warn_error(&error);
            error
        })?;
        let family = out.counter(
            "huatuo_bamai_netdev_hw_rx_dropped_total",
            "Packets the NIC dropped in hardware (statistics/rx_missed_errors).",
        );
        for d in devices {
            family.push(
                vec![("device", d.device), ("driver", d.driver)],
                d.rx_missed as f64,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
