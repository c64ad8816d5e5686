//! memory_vmstat: host /proc/vmstat and container memory.stat (memory_vmstat_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "memory_vmstat";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryVmstatConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for MemoryVmstatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(MemoryVmstatConfig);

pub struct MemoryVmstatProbe {
    _ctx: ProbeContext,
}

impl Probe for MemoryVmstatProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryVmstatConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.memory_vmstat
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
