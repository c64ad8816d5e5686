//! arp: neighbour (ARP) entries. Host network namespace: lines − 1 of `/proc/1/net/arp` →
//! `huatuo_bamai_arp_entries`; the kernel-wide ARP table size (every namespace) from the `entries`
//! column of `/proc/net/stat/arp_cache` → `huatuo_bamai_arp_total`; each container's namespace
//! (its init pid) → `huatuo_bamai_arp_container_entries{<container labels>}`. Gauges, as upstream.
//! Containers on the host network are skipped (see [`crate::probes::common::netns`]).

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::netns;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "arp";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/1/net/arp -> huatuo_bamai_arp_entries; <procfs_root>/net/stat/arp_cache ->
/// huatuo_bamai_arp_total; a container's <procfs_root>/<init pid>/net/arp -> huatuo_bamai_arp_container_entries.
pub struct ArpConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
}

impl Default for ArpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(ArpConfig, "arp");

/// Entries of a `/proc/<pid>/net/arp` table: its lines after the `IP address ...` header.
pub fn parse_arp_entries(text: &str) -> Result<u64, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match lines.next() {
        Some(header) if header.starts_with("IP address") => Ok(lines.count() as u64),
        Some(header) => Err(format!(
            "header `{header}` does not start with `IP address`"
        )),
        None => Err("empty (no header line)".into()),
    }
}

/// The `entries` column of `/proc/net/stat/arp_cache` (hex; the table's size, the same on every
/// per-CPU line), from the first data line.
pub fn parse_arp_cache_entries(text: &str) -> Result<u64, String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty (no header line)")?;
    let column = header
        .split_whitespace()
        .position(|c| c == "entries")
        .ok_or_else(|| format!("header `{header}` has no `entries` column"))?;
    let first = lines.next().ok_or("no data line")?;
    let raw = first
        .split_whitespace()
        .nth(column)
        .ok_or_else(|| format!("data line `{first}` lacks the entries column"))?;
    u64::from_str_radix(raw, 16).map_err(|_| format!("entries `{raw}` is not hexadecimal"))
}

pub struct ArpProbe {
    ctx: ProbeContext,
    warn: WarnOnce,
}

impl Probe for ArpProbe {
    const NAME: &'static str = NAME;
    type Settings = ArpConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self {
            ctx: ctx.clone(),
            warn: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let mut collected = false;
        let mut first_error = None;
        let mut record = |result: Result<u64, ProbeError>, warn: &mut WarnOnce| match result {
            Ok(value) => {
                collected = true;
                Some(value)
            }
            Err(error) => {
                warn.warn_error(&error);
                first_error.get_or_insert(error);
                None
            }
        };

        let host = netns::host_net_dir(&self.ctx).join("arp");
        let host = file::read_parsed(NAME, &host, parse_arp_entries);
        if let Some(entries) = record(host, &mut self.warn) {
            out.gauge(
                "huatuo_bamai_arp_entries",
                "ARP entries in the host network namespace (lines of /proc/1/net/arp - 1).",
            )
            .push(vec![], entries as f64);
        }
        let cache = self.ctx.procfs("net/stat/arp_cache");
        let cache = file::read_parsed(NAME, &cache, parse_arp_cache_entries);
        if let Some(total) = record(cache, &mut self.warn) {
            // Rendered untyped: upstream's gauge is named `*_total` (see MetricSet::gauge).
            out.gauge(
                "huatuo_bamai_arp_total",
                "ARP entries of every network namespace, host and containers (entries of /proc/net/stat/arp_cache).",
            )
            .push(vec![], total as f64);
        }

        let family = out.gauge(
            "huatuo_bamai_arp_container_entries",
            "ARP entries in the container's network namespace (lines of /proc/<init pid>/net/arp - 1).",
        );
        for target in netns::container_netns(&self.ctx) {
            let entries = file::read_parsed(NAME, &target.net_dir.join("arp"), parse_arp_entries);
            if let Some(entries) = record(entries, &mut self.warn) {
                family.push(target.container.labels(), entries as f64);
            }
        }
        self.warn.end_tick();

        match first_error {
            Some(error) if !collected => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
