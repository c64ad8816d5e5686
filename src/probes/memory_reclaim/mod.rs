//! memory_reclaim: direct reclaim and direct compaction stall time of the host (upstream's
//! `huatuo_bamai_memory_free_allocpages_stall` / `_compaction_stall`, cumulative ns) and memcg
//! direct reclaims per container (`huatuo_bamai_memory_reclaim_container_directstall`), all from
//! tracepoints (no kprobes).
//!
//! Also the `memory_reclaim` event (upstream's `memory_reclaim_events`): a task that spent at
//! least `event_threshold_ms` in one direct reclaim, global (`mm_vmscan_direct_reclaim_begin/end`)
//! or memcg (`mm_vmscan_memcg_reclaim_begin/end`), becomes a document naming it, attributed to
//! its container. The kernel lets at most 100 events a second through and counts the rest.

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::MetricScope;
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};
use crate::probes::common::watched_cgroups::WatchedCgroups;

const NAME: &str = "memory_reclaim";
const STALL_MAP: &str = "STALL_NS";
const WATCHED_MAP: &str = "RECLAIM_WATCHED_CGROUPS";
const COUNT_MAP: &str = "RECLAIM_CGROUP_COUNT";
const EVENTS_MAP: &str = "RECLAIM_EVENTS";
const DROPS_MAP: &str = "RECLAIM_EVENT_DROPS";
/// RECLAIM_EVENT_DROPS indexes: suppressed by the rate limit, lost (ring buffer full).
const DROPS_SUPPRESSED: u32 = 0;
const DROPS_LOST: u32 = 1;
/// Events handled per tick; the rest wait in the ring buffer (the kernel emits at most 100/s).
const MAX_EVENTS_PER_TICK: usize = 1024;
/// Index of each stall kind in STALL_NS.
const DIRECT_RECLAIM: u32 = 0;
const COMPACTION: u32 = 1;
const ATTACHMENTS: [Attachment; 6] = [
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
    Attachment {
        program: "on_memcg_reclaim_end",
        hook: Hook::TpBtf("mm_vmscan_memcg_reclaim_end"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Direct reclaim / direct compaction stall time (host) and memcg direct reclaims per container
/// (tp_btf vmscan and compaction tracepoints).
pub struct MemoryReclaimConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// A direct reclaim at least this long (ms) becomes a `memory_reclaim` event (0: every one,
    /// within the kernel's rate limit).
    pub event_threshold_ms: u64,
}

impl Default for MemoryReclaimConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            event_threshold_ms: 900,
        }
    }
}

/// The kernel side takes the threshold in µs as a u32 (at most ~71 minutes).
const MAX_THRESHOLD_MS: u64 = u32::MAX as u64 / 1000;

crate::probe_settings!(
    MemoryReclaimConfig,
    "memory_reclaim",
    |c: &MemoryReclaimConfig| {
        if c.event_threshold_ms > MAX_THRESHOLD_MS {
            return Err(format!(
                "event_threshold_ms must be at most {MAX_THRESHOLD_MS}, got {}",
                c.event_threshold_ms
            ));
        }
        Ok(())
    }
);

/// Kind of direct reclaim of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReclaimKind {
    /// Global direct reclaim (the zone/node ran low).
    Direct,
    /// Memory-cgroup reclaim (the task's cgroup hit its limit).
    Memcg,
}

/// One `struct reclaim_event` of memory_reclaim.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimRecord {
    pub boot_ns: u64,
    pub cgroup_id: u64,
    pub memcg_id: u64,
    pub duration_ns: u64,
    /// Thread id.
    pub tid: u32,
    /// Process id.
    pub pid: u32,
    pub kind: ReclaimKind,
    pub comm: String,
}

impl ReclaimRecord {
    pub const SIZE: usize = 64;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        let kind = match event_ring::u32_at(bytes, 40)? {
            0 => ReclaimKind::Direct,
            1 => ReclaimKind::Memcg,
            _ => return None,
        };
        Some(Self {
            boot_ns: event_ring::u64_at(bytes, 0)?,
            cgroup_id: event_ring::u64_at(bytes, 8)?,
            memcg_id: event_ring::u64_at(bytes, 16)?,
            duration_ns: event_ring::u64_at(bytes, 24)?,
            tid: event_ring::u32_at(bytes, 32)?,
            pid: event_ring::u32_at(bytes, 36)?,
            kind,
            comm: event_ring::comm_at(bytes, 48)?,
        })
    }
}

impl ReclaimRecord {
    pub fn data(&self) -> ReclaimData {
        ReclaimData {
            pid: self.pid,
            tid: self.tid,
            comm: self.comm.clone(),
            reclaim_duration_ns: self.duration_ns,
            kind: self.kind,
        }
    }
}

/// `tracer_data` of a memory_reclaim document: upstream's `MemoryReclaimTracingData` plus `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReclaimData {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub reclaim_duration_ns: u64,
    pub kind: ReclaimKind,
}

pub struct MemoryReclaimProbe {
    programs: BpfProgramSet,
    /// Container memory cgroup ids counted per container (RECLAIM_WATCHED_CGROUPS).
    watched: WatchedCgroups,
    ring: EventRing,
    ctx: ProbeContext,
    events_total: u64,
}

impl Probe for MemoryReclaimProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = MemoryReclaimConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let threshold_us = settings
            .event_threshold_ms
            .min(MAX_THRESHOLD_MS)
            .saturating_mul(1000) as u32;
        let bpf = ebpf::load(
            NAME,
            crate::bpf_object!("memory_reclaim"),
            &[
                ("event_threshold_us", threshold_us),
                ("key_by_memory_css", ctx.cgroup.keys_by_css() as u32),
            ],
        )?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            // The memory cgroup id is the default-hierarchy id on v2, the memory css id on v1.
            watched: WatchedCgroups::new(
                ctx.containers.clone(),
                WATCHED_MAP,
                |c| c.memory_cgroup_id,
                MetricScope::Normal,
            ),
            ring,
            ctx: ctx.clone(),
            events_total: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        self.publish_events(out)?;
        let stall = |programs: &BpfProgramSet, kind| -> Result<f64, ProbeError> {
            Ok(programs.per_cpu_sum(STALL_MAP, kind)? as f64)
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

        let containers = self.watched.sync(&mut self.programs)?;
        let counts = self
            .programs
            .per_cpu_hash_sums::<1>(COUNT_MAP, self.watched.ids())?;
        let family = out.gauge(
            "huatuo_bamai_memory_reclaim_container_directstall",
            "Memory-cgroup direct reclaims entered by a container's tasks (vmscan memcg_reclaim_begin); cumulative count.",
        );
        for (container, id) in self.watched.exported(&containers) {
            let count = counts.get(&id).map(|c| c[0]).unwrap_or(0);
            family.push(container.labels(), count as f64);
        }
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl MemoryReclaimProbe {
    /// Publishes the events waiting in the ring buffer and exports the event counters.
    fn publish_events(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self.ring.drain(MAX_EVENTS_PER_TICK, ReclaimRecord::decode);
        if !records.is_empty() {
            let containers = self.ctx.containers.borrow().clone();
            for record in records {
                self.events_total += 1;
                let container = containers.of_task(record.cgroup_id, record.memcg_id);
                let data = record.data();
                let document = event_ring::document_at(
                    &self.ctx,
                    NAME,
                    container,
                    record.cgroup_id,
                    serde_json::to_value(&data).unwrap_or_default(),
                    record.boot_ns,
                );
                self.ctx.events.publish(document);
            }
        }
        let suppressed = self.programs.per_cpu_sum(DROPS_MAP, DROPS_SUPPRESSED)?;
        let lost = self.programs.per_cpu_sum(DROPS_MAP, DROPS_LOST)?;
        self.ring.account(NAME, lost);
        out.counter(
            "huatuo_bamai_memory_reclaim_events_total",
            "Direct reclaims (global or memcg) longer than event_threshold_ms published as memory_reclaim events; cumulative.",
        )
        .push(vec![], self.events_total as f64);
        let family = out.counter(
            "huatuo_bamai_memory_reclaim_events_suppressed_total",
            "memory_reclaim events the kernel dropped, by reason: rate_limit (over 100/s) or ring_full; cumulative.",
        );
        family.push(vec![("reason", "rate_limit".into())], suppressed as f64);
        family.push(vec![("reason", "ring_full".into())], lost as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
