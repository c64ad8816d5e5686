//! runqlat: run-queue latency (wakeup or preemption → switched in), exported as upstream's
//! `huatuo_bamai_runqlat_latency{zone}` with zones 0–10, 10–20, 20–50, ≥50 ms.

use serde::{Deserialize, Serialize};

use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "runqlat";
const HOST_MAP: &str = "RUNQ_HOST_LATENCY";
pub const ZONES: usize = 4;
const ATTACHMENTS: [Attachment; 3] = [
    Attachment {
        program: "on_sched_wakeup",
        hook: Hook::TpBtf("sched_wakeup"),
    },
    Attachment {
        program: "on_sched_wakeup_new",
        hook: Hook::TpBtf("sched_wakeup_new"),
    },
    Attachment {
        program: "on_sched_switch",
        hook: Hook::TpBtf("sched_switch"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunqlatConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for RunqlatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(RunqlatConfig);

/// Sums per-CPU zone counters into host totals.
pub fn sum_zones(per_zone_per_cpu: &[Vec<u64>]) -> [u64; ZONES] {
    let mut totals = [0u64; ZONES];
    for (zone, per_cpu) in per_zone_per_cpu.iter().take(ZONES).enumerate() {
        totals[zone] = per_cpu.iter().fold(0u64, |acc, v| acc.wrapping_add(*v));
    }
    totals
}

pub struct RunqlatProbe {
    programs: BpfProgramSet,
}

impl Probe for RunqlatProbe {
    const NAME: &'static str = NAME;
    type Settings = RunqlatConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.runqlat
    }

    fn start(_settings: &Self::Settings, _ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let bpf = ebpf::load(
            NAME,
            crate::bpf_object!("runqlat"),
            &[("sample_one_in_n", 1)],
        )?;
        let programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        Ok(Self { programs })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let mut per_zone = Vec::with_capacity(ZONES);
        for zone in 0..ZONES as u32 {
            per_zone.push(self.programs.per_cpu_u64(HOST_MAP, zone)?);
        }
        let family = out.gauge(
            "huatuo_bamai_runqlat_latency",
            "Run-queue latency events per zone (0:<10ms 1:<20ms 2:<50ms 3:>=50ms); cumulative count.",
        );
        for (zone, total) in sum_zones(&per_zone).iter().enumerate() {
            family.push(vec![("zone", zone.to_string())], *total as f64);
        }
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

#[cfg(test)]
mod tests;
