//! netdev: host and container network devices (netdev_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "netdev";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetdevConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for NetdevConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(NetdevConfig);

pub struct NetdevProbe {
    _ctx: ProbeContext,
}

impl Probe for NetdevProbe {
    const NAME: &'static str = NAME;
    type Settings = NetdevConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.netdev
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
