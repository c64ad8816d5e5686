//! diskio: /proc/diskstats and iowait (diskio_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "diskio";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskioConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for DiskioConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(DiskioConfig);

pub struct DiskioProbe {
    _ctx: ProbeContext,
}

impl Probe for DiskioProbe {
    const NAME: &'static str = NAME;
    type Settings = DiskioConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.diskio
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
