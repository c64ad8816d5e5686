//! runqlat: run-queue latency (wakeup or preemption → switched in), exported as upstream's
//! `huatuo_bamai_runqlat_latency{zone}` and, per normal container,
//! `huatuo_bamai_runqlat_container_latency{<container labels>,zone}`; zones 0–10, 10–20, 20–50,
//! ≥50 ms. The kernel keys containers by the task's default-hierarchy cgroup on cgroup v2 and by
//! its cpu css cgroup on v1 and hybrid hosts (as upstream keys by the task group).

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::MetricScope;
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::watched_cgroups::WatchedCgroups;

const NAME: &str = "runqlat";
const HOST_MAP: &str = "RUNQ_HOST_LATENCY";
const HISTOGRAM_MAP: &str = "RUNQ_HOST_HISTOGRAM";
const WATCHED_MAP: &str = "RUNQ_WATCHED_CGROUPS";
const CGROUP_MAP: &str = "RUNQ_CGROUP_LATENCY";
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Run-queue latency (tp_btf sched_wakeup, sched_wakeup_new, sched_switch).
pub struct RunqlatConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
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

crate::probe_settings!(RunqlatConfig, "runqlat");

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
    /// Container cpu cgroup ids the kernel counts per container (RUNQ_WATCHED_CGROUPS).
    watched: WatchedCgroups,
}

impl Probe for RunqlatProbe {
    const NAME: &'static str = NAME;
    type Settings = RunqlatConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let by_css = ctx.cgroup.keys_by_css();
        let bpf = ebpf::load(
            NAME,
            crate::bpf_object!("runqlat"),
            &[("key_by_cpu_css", by_css as u32)],
        )?;
        let programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        Ok(Self {
            programs,
            // The cpu cgroup id is the default-hierarchy id on v2, the cpu css id on v1.
            watched: WatchedCgroups::new(
                ctx.containers.clone(),
                WATCHED_MAP,
                |c| c.cpu_cgroup_id,
                MetricScope::Normal,
            )
            .with_switch("RUNQ_WATCHING"),
        })
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
        let histogram = self.programs.log2_histogram(HISTOGRAM_MAP, 0)?;
        out.histogram(
            "huatuo_bamai_runqlat_latency_seconds",
            "Run-queue wait of every task switched in (log2 buckets from the kernel).",
        )
        .push_histogram(
            vec![],
            &histogram.buckets(),
            histogram.sum_seconds(),
            histogram.count(),
        );
        self.collect_containers(out)
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl RunqlatProbe {
    /// Tells the kernel which cgroups are containers, then exports each container's zones.
    fn collect_containers(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let containers = self.watched.sync(&mut self.programs)?;
        let sums = self
            .programs
            .per_cpu_hash_sums::<ZONES>(CGROUP_MAP, self.watched.ids())?;
        let family = out.gauge(
            "huatuo_bamai_runqlat_container_latency",
            "Run-queue latency events of a container's tasks per zone (0:<10ms 1:<20ms 2:<50ms 3:>=50ms); cumulative count.",
        );
        for (container, id) in self.watched.exported(&containers) {
            let zones = sums.get(&id).copied().unwrap_or_default();
            for (zone, count) in zones.iter().enumerate() {
                family.push(
                    container.labels_with(&[("zone", &zone.to_string())]),
                    *count as f64,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
