//! memory_reclaim: direct reclaim and direct compaction stall time of the host (upstream's
//! `huatuo_bamai_memory_free_allocpages_stall` / `_compaction_stall`, cumulative ns) and memcg
//! direct reclaims per container (`huatuo_bamai_memory_reclaim_container_directstall`), all from
//! tracepoints (no kprobes).

use serde::{Deserialize, Serialize};

use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::watched_cgroups::{per_container_attribution, WatchedCgroups};
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "memory_reclaim";
const STALL_MAP: &str = "STALL_NS";
const WATCHED_MAP: &str = "RECLAIM_WATCHED_CGROUPS";
const COUNT_MAP: &str = "RECLAIM_CGROUP_COUNT";
/// Index of each stall kind in STALL_NS.
const DIRECT_RECLAIM: u32 = 0;
const COMPACTION: u32 = 1;
const ATTACHMENTS: [Attachment; 5] = [
    Attachment {
        program: "on_direct_reclaim_begin",
        hook: Hook::TpBtf("mm_vmscan_direct_reclaim_begin"),
    },
    Attachment {
        program: "on_direct_reclaim_end",
        hook: Hook::TpBtf("mm_vmscan_direct_reclaim_end"),
    },
    Attachment {
        program: "on_compaction_begin",
        hook: Hook::TpBtf("mm_compaction_begin"),
    },
    Attachment {
        program: "on_compaction_end",
        hook: Hook::TpBtf("mm_compaction_end"),
    },
    Attachment {
        program: "on_memcg_reclaim_begin",
        hook: Hook::TpBtf("mm_vmscan_memcg_reclaim_begin"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryReclaimConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for MemoryReclaimConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(MemoryReclaimConfig);

pub struct MemoryReclaimProbe {
    programs: BpfProgramSet,
    /// Container cgroup ids counted per container (RECLAIM_WATCHED_CGROUPS).
    watched: WatchedCgroups,
    /// False on cgroup-v1-only hosts, where BPF cannot tell containers apart by cgroup id.
    per_container: bool,
}

impl Probe for MemoryReclaimProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryReclaimConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.memory_reclaim
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let bpf = ebpf::load(NAME, crate::bpf_object!("memory_reclaim"), &[])?;
        let programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        Ok(Self {
            programs,
            watched: WatchedCgroups::new(ctx.containers.clone(), WATCHED_MAP, |c| c.cgroup_id),
            per_container: per_container_attribution(ctx, NAME),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let stall = |programs: &BpfProgramSet, kind| -> Result<f64, ProbeError> {
            let per_cpu = programs.per_cpu_u64(STALL_MAP, kind)?;
            Ok(per_cpu.iter().fold(0u64, |a, v| a.wrapping_add(*v)) as f64)
        };
        out.gauge(
            "huatuo_bamai_memory_free_allocpages_stall",
            "Time tasks spent in direct reclaim (vmscan direct_reclaim_begin..end), cumulative ns.",
        )
        .push(vec![], stall(&self.programs, DIRECT_RECLAIM)?);
        out.gauge(
            "huatuo_bamai_memory_free_compaction_stall",
            "Time tasks spent in direct compaction (compaction begin..end outside kcompactd), cumulative ns.",
        )
        .push(vec![], stall(&self.programs, COMPACTION)?);

        if !self.per_container {
            return Ok(());
        }
        let containers = self.watched.sync(&mut self.programs)?;
        let counts = self
            .programs
            .per_cpu_hash_sums::<1>(COUNT_MAP, self.watched.ids())?;
        let family = out.gauge(
            "huatuo_bamai_memory_reclaim_container_directstall",
            "Memory-cgroup direct reclaims entered by a container's tasks (vmscan memcg_reclaim_begin); cumulative count.",
        );
        for container in containers.iter() {
            let count = counts.get(&container.cgroup_id).map(|c| c[0]).unwrap_or(0);
            family.push(container.labels(), count as f64);
        }
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}
