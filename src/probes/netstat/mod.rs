//! netstat: host and container /proc/net/netstat and snmp (netstat_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "netstat";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetstatConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for NetstatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(NetstatConfig);

pub struct NetstatProbe {
    _ctx: ProbeContext,
}

impl Probe for NetstatProbe {
    const NAME: &'static str = NAME;
    type Settings = NetstatConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.netstat
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
