//! memory_buddyinfo: `/proc/buddyinfo` → `huatuo_bamai_memory_buddyinfo_blocks{node,zone,order}`
//! (free blocks of 2^order pages per NUMA node and zone; gauge, upstream's name and labels).

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;

const NAME: &str = "memory_buddyinfo";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/buddyinfo -> huatuo_bamai_memory_buddyinfo_blocks{node,zone,order}.
pub struct MemoryBuddyinfoConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
}

impl Default for MemoryBuddyinfoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(MemoryBuddyinfoConfig, "memory_buddyinfo");

/// One line of `/proc/buddyinfo`: free block counts of one zone, indexed by order.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneFreeBlocks {
    pub node: String,
    pub zone: String,
    pub blocks: Vec<u64>,
}

/// Parses `/proc/buddyinfo` ("Node 0, zone   Normal  11211   5422 ...").
pub fn parse_buddyinfo(text: &str) -> Result<Vec<ZoneFreeBlocks>, String> {
    let mut zones = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: &str| format!("line {}: {what}: `{}`", index + 1, line.trim());
        let mut fields = line.split_whitespace();
        let node = match (fields.next(), fields.next()) {
            (Some("Node"), Some(node)) => node
                .strip_suffix(',')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| at("bad node number"))?,
            _ => return Err(at("expected `Node <n>,`")),
        };
        let zone = match (fields.next(), fields.next()) {
            (Some("zone"), Some(zone)) => zone,
            _ => return Err(at("expected `zone <name>`")),
        };
        let blocks = fields
            .map(|raw| raw.parse::<u64>())
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|_| at("a block count is not an integer"))?;
        if blocks.is_empty() {
            return Err(at("no block counts"));
        }
        zones.push(ZoneFreeBlocks {
            node: node.to_string(),
            zone: zone.to_string(),
            blocks,
        });
    }
    if zones.is_empty() {
        return Err("no zones (empty or truncated file)".to_string());
    }
    Ok(zones)
}

pub struct MemoryBuddyinfoProbe {
    path: PathBuf,
}

impl Probe for MemoryBuddyinfoProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryBuddyinfoConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self {
            path: ctx.procfs("buddyinfo"),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let zones = file::read_parsed(NAME, &self.path, parse_buddyinfo)?;
        let family = out.gauge(
            "huatuo_bamai_memory_buddyinfo_blocks",
            "Free blocks of 2^order pages per NUMA node and zone (/proc/buddyinfo).",
        );
        for zone in zones {
            for (order, count) in zone.blocks.iter().enumerate() {
                family.push(
                    vec![
                        ("node", zone.node.clone()),
                        ("zone", zone.zone.clone()),
                        ("order", order.to_string()),
                    ],
                    *count as f64,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
