//! pressure: PSI pressure host and container (pressure_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "pressure";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PressureConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(PressureConfig);

pub struct PressureProbe {
    _ctx: ProbeContext,
}

impl Probe for PressureProbe {
    const NAME: &'static str = NAME;
    type Settings = PressureConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.pressure
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
