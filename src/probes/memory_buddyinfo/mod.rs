//! memory_buddyinfo: /proc/buddyinfo (memory_buddyinfo_blocks).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "memory_buddyinfo";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryBuddyinfoConfig {
    pub enabled: bool,
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

crate::probe_settings!(MemoryBuddyinfoConfig);

pub struct MemoryBuddyinfoProbe {
    _ctx: ProbeContext,
}

impl Probe for MemoryBuddyinfoProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryBuddyinfoConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.memory_buddyinfo
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
