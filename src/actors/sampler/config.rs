//! `[sampler]`: the overhead budget and how the sampler holds it.

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::config::{Invalid, Live, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Adaptive sampling: every interval the sampler measures the agent's overhead (its own CPU plus
/// the run time of its BPF programs, bpf_stats) as a fraction of host CPU, exports it as
/// huatuo_bamai_overhead_ratio and, over budget, throttles the most expensive probes (they keep 1
/// event in N and count it N times, so counters stay unbiased). Applies live (`ctl set`).
pub struct SamplerConfig {
    /// Measure the overhead (always, while on) and throttle probes over budget.
    pub enabled: bool,
    /// Overhead allowed: agent CPU + BPF program run time, as a fraction of host CPU.
    pub budget_ratio: f64,
    /// One measurement and decision round every this many ms.
    pub interval_ms: u64,
    /// Throttling aims at this fraction of the budget.
    pub target_fraction: f64,
    /// Relaxing starts below this fraction of the budget ...
    pub relax_below_fraction: f64,
    /// ... held for this many rounds in a row (one relax step each time).
    pub relax_after_rounds: u32,
    /// Rounds in a row over budget before throttling (2 ignores a one-round burst).
    pub throttle_after_rounds: u32,
    /// Largest sampling divisor (keep 1 event in N); 1 disables throttling.
    pub max_divisor: u32,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            budget_ratio: 0.01,
            interval_ms: 1000,
            target_fraction: 0.8,
            relax_below_fraction: 0.5,
            relax_after_rounds: 3,
            throttle_after_rounds: 2,
            max_divisor: 65536,
        }
    }
}

impl Section for SamplerConfig {
    const PATH: &'static str = "sampler";
    // Re-read every round, so `ctl set sampler.*` applies without a restart.
    const LIVE: Live = Live::ReadLive;

    fn validate(&self) -> Result<(), Invalid> {
        if !(self.budget_ratio > 0.0 && self.budget_ratio <= 1.0) {
            return Err(Invalid::field(
                "budget_ratio",
                "must be in (0, 1], e.g. 0.01 for 1 % of host CPU",
            ));
        }
        if self.interval_ms < 500 {
            return Err(Invalid::field("interval_ms", "must be at least 500"));
        }
        if !(self.relax_below_fraction > 0.0
            && self.relax_below_fraction < self.target_fraction
            && self.target_fraction <= 1.0)
        {
            return Err(Invalid::field(
                "target_fraction",
                "need 0 < relax_below_fraction < target_fraction <= 1 (the gap is the hysteresis)",
            ));
        }
        if self.relax_after_rounds == 0 {
            return Err(Invalid::field("relax_after_rounds", "must be at least 1"));
        }
        if self.throttle_after_rounds == 0 {
            return Err(Invalid::field(
                "throttle_after_rounds",
                "must be at least 1",
            ));
        }
        if !self.max_divisor.is_power_of_two() {
            return Err(Invalid::field(
                "max_divisor",
                "must be a power of two (1 = never throttle, 65536 default)",
            ));
        }
        if self.max_divisor == 0 {
            return Err(Invalid::field(
                "max_divisor",
                "must be at least 1 (1 = never throttle)",
            ));
        }
        Ok(())
    }
}
