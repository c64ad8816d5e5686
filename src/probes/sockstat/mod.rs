//! sockstat: host and container sockets and TCP memory (sockstat_*, tcp_memory_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "sockstat";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SockstatConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for SockstatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(SockstatConfig);

pub struct SockstatProbe {
    _ctx: ProbeContext,
}

impl Probe for SockstatProbe {
    const NAME: &'static str = NAME;
    type Settings = SockstatConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.sockstat
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
