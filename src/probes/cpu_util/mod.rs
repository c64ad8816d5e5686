//! cpu_util: host and container CPU utilisation (cpu_util_*, cpu_util_container_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "cpu_util";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuUtilConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for CpuUtilConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(CpuUtilConfig);

pub struct CpuUtilProbe {
    _ctx: ProbeContext,
}

impl Probe for CpuUtilProbe {
    const NAME: &'static str = NAME;
    type Settings = CpuUtilConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.cpu_util
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
