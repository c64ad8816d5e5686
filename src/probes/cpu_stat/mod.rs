//! cpu_stat: container CPU throttling and wait (cpu_stat_container_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "cpu_stat";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuStatConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for CpuStatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(CpuStatConfig);

pub struct CpuStatProbe {
    _ctx: ProbeContext,
}

impl Probe for CpuStatProbe {
    const NAME: &'static str = NAME;
    type Settings = CpuStatConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.cpu_stat
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
