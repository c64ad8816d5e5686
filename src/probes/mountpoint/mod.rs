//! mountpoint: read-only mount points (mountpoint_perm_ro).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "mountpoint";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MountpointConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for MountpointConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(MountpointConfig);

pub struct MountpointProbe {
    _ctx: ProbeContext,
}

impl Probe for MountpointProbe {
    const NAME: &'static str = NAME;
    type Settings = MountpointConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.mountpoint
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
