//! memory_events: container memory.events (memory_events_container_*).
//! (Being implemented: this skeleton registers the probe; collection comes next.)

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "memory_events";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryEventsConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for MemoryEventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(MemoryEventsConfig);

pub struct MemoryEventsProbe {
    _ctx: ProbeContext,
}

impl Probe for MemoryEventsProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryEventsConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.memory_events
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self { _ctx: ctx.clone() })
    }

    fn collect(&mut self, _out: &mut MetricSet) -> Result<(), ProbeError> {
        Ok(())
    }
}
