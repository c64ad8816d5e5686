//! oom: every OOM kill (tp_btf `mark_victim`) becomes an `oom` event document naming the victim
//! and the trigger (the task whose allocation invoked the OOM killer), with the victim's and the
//! trigger's memory cgroup (`memory.current/max`, `memory.stat`, `memory.events`, or the v1
//! files) and host meminfo read when the event is drained, attributed to the victim's
//! container. Kills count in `huatuo_bamai_oom_host_total` (victims outside any container) and
//! `huatuo_bamai_oom_container_total{<container labels>, latest_victim_comm}`. `tracer_data` has
//! upstream's shape ([`OomData`]).

mod snapshot;

use std::collections::{BTreeMap, HashMap, HashSet};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::{Container, ContainerSet, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};

pub use snapshot::{memcg_snapshot, parse_meminfo, MemcgSnapshot};

const NAME: &str = "oom";
const EVENTS_MAP: &str = "OOM_EVENTS";
const LOST_MAP: &str = "OOM_LOST";
/// Kills handled per tick; the rest wait in the ring buffer for the next tick.
const MAX_KILLS_PER_TICK: usize = 1024;
const ATTACHMENTS: [Attachment; 1] = [Attachment {
    program: "on_mark_victim",
    hook: Hook::TpBtf("mark_victim"),
}];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: OOM kills (tp_btf oom/mark_victim) -> `oom` documents (victim and trigger pid/comm,
/// their containers' memory cgroup: current, max, memory.stat, memory.events or the v1 files;
/// host meminfo) and huatuo_bamai_oom_host_total, huatuo_bamai_oom_container_total.
pub struct OomConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the ring buffer is drained: a kill is published (and its memory cgroup read)
    /// within one interval.
    pub interval_ms: u64,
}

impl Default for OomConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 200,
        }
    }
}

crate::probe_settings!(OomConfig, "oom");

/// One `struct oom_task` of oom.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomTask {
    pub cgroup_id: u64,
    /// Id of the task's memory cgroup (the v1 memory hierarchy's directory inode on v1).
    pub memcg_id: u64,
    /// Thread id.
    pub tid: u32,
    /// Process id.
    pub pid: u32,
    pub comm: String,
    /// Address of the task's memory cgroup css (0 without a memory controller).
    pub memcg_css: u64,
}

impl OomTask {
    const SIZE: usize = 48;

    fn decode(bytes: &[u8], offset: usize) -> Option<Self> {
        Some(Self {
            cgroup_id: event_ring::u64_at(bytes, offset)?,
            memcg_id: event_ring::u64_at(bytes, offset + 8)?,
            tid: event_ring::u32_at(bytes, offset + 16)?,
            pid: event_ring::u32_at(bytes, offset + 20)?,
            comm: event_ring::comm_at(bytes, offset + 24)?,
            memcg_css: event_ring::u64_at(bytes, offset + 40)?,
        })
    }
}

/// One `struct oom_event` of oom.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomRecord {
    pub boot_ns: u64,
    pub victim_uid: u32,
    pub victim: OomTask,
    pub trigger: OomTask,
}

impl OomRecord {
    pub const SIZE: usize = 16 + 2 * OomTask::SIZE;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            boot_ns: event_ring::u64_at(bytes, 0)?,
            victim_uid: event_ring::u32_at(bytes, 8)?,
            victim: OomTask::decode(bytes, 16)?,
            trigger: OomTask::decode(bytes, 16 + OomTask::SIZE)?,
        })
    }
}

/// The container of `task` (see [`ContainerSet::of_task`]).
pub fn container_of<'a>(containers: &'a ContainerSet, task: &OomTask) -> Option<&'a Container> {
    containers.of_task(task.cgroup_id, task.memcg_id)
}

/// One side of a kill: upstream's `trigger` / `victim` (`OOMActor`: same names and types), plus
/// `tid`, `cgroup_id` and `memory_cgroup_id` of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomActor {
    /// `0x%016x` of the task's memory cgroup css, as upstream; empty when unknown.
    pub memory_cgroup_css_addr: String,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    /// Id of the task's memory cgroup (equals `cgroup_id` on cgroup v2).
    pub memory_cgroup_id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_hostname: String,
    /// The container's memory cgroup (absent outside containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<MemcgSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemorySnapshot {
    pub host_meminfo: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// `tracer_data` of an oom document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomData {
    pub trigger: OomActor,
    pub victim: OomActor,
    /// uid of the victim (from the tracepoint).
    pub victim_uid: u32,
    pub memory_snapshot: MemorySnapshot,
    #[serde(flatten)]
    pub columns: OomDashboardColumns,
}

/// The flat columns upstream's Grafana event dashboard shows for oom (`tracer_data.trigger_pid`,
/// `victim_process_name`, …: its earlier document), repeating `trigger` / `victim`, so that
/// dashboard's table fills. The container fields are empty outside containers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomDashboardColumns {
    pub trigger_pid: u32,
    pub trigger_process_name: String,
    pub trigger_container_id: String,
    pub trigger_container_hostname: String,
    pub victim_pid: u32,
    pub victim_process_name: String,
    pub victim_container_id: String,
    pub victim_container_hostname: String,
}

impl OomDashboardColumns {
    fn of(trigger: &OomActor, victim: &OomActor) -> Self {
        Self {
            trigger_pid: trigger.pid,
            trigger_process_name: trigger.comm.clone(),
            trigger_container_id: trigger.container_id.clone(),
            trigger_container_hostname: trigger.container_hostname.clone(),
            victim_pid: victim.pid,
            victim_process_name: victim.comm.clone(),
            victim_container_id: victim.container_id.clone(),
            victim_container_hostname: victim.container_hostname.clone(),
        }
    }
}

/// A container's kills and the comm of its latest victim.
#[derive(Debug, Default)]
struct ContainerKills {
    count: u64,
    latest_victim_comm: String,
}

/// Per-container kill counts, keyed by container id; containers that are gone are forgotten.
#[derive(Debug, Default)]
pub struct OomCounters {
    pub host: u64,
    containers: HashMap<String, ContainerKills>,
}

impl OomCounters {
    /// Counts a kill of `victim_comm` in `container` (`None`: outside any known container).
    pub fn count(&mut self, container: Option<&Container>, victim_comm: &str) {
        match container {
            Some(c) => {
                let kills = self.containers.entry(c.id.clone()).or_default();
                kills.count += 1;
                kills.latest_victim_comm = victim_comm.to_string();
            }
            None => self.host += 1,
        }
    }

    /// Exports the host counter and one series per current container (0 until it has a kill),
    /// of the kinds upstream exports (normal), labelled as upstream with `latest_victim_comm`
    /// (empty until the first kill).
    pub fn export(&mut self, containers: &ContainerSet, out: &mut MetricSet) {
        let live: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        self.containers.retain(|id, _| live.contains(id.as_str()));
        out.counter(
            "huatuo_bamai_oom_host_total",
            "OOM kills whose victim is in no known container (oom:mark_victim); cumulative.",
        )
        .push(vec![], self.host as f64);
        let family = out.counter(
            "huatuo_bamai_oom_container_total",
            "OOM kills whose victim is in the container (oom:mark_victim); cumulative.",
        );
        for container in containers.for_metrics(MetricScope::Normal) {
            let kills = self.containers.get(&container.id);
            let mut labels = container.labels();
            let comm = kills.map(|k| k.latest_victim_comm.clone());
            labels.push(("latest_victim_comm", comm.unwrap_or_default()));
            family.push(labels, kills.map(|k| k.count).unwrap_or(0) as f64);
        }
    }
}

pub struct OomProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    counters: OomCounters,
}

impl Probe for OomProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = OomConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let bpf = ebpf::load(NAME, crate::bpf_object!("oom"), &[])?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            counters: OomCounters::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self.ring.drain(MAX_KILLS_PER_TICK, OomRecord::decode);
        let containers = self.ctx.containers.borrow().clone();
        if !records.is_empty() {
            let meminfo = self.host_meminfo();
            for record in records {
                let victim = container_of(&containers, &record.victim);
                self.counters.count(victim, &record.victim.comm);
                let document = self.document(&containers, &record, meminfo.clone());
                self.ctx.events.publish(document);
            }
        }
        // Kills the kernel could not queue (ring buffer full) or that did not decode are logged.
        self.ring
            .account_losses(NAME, &self.programs, LOST_MAP, 0)?;
        self.counters.export(&containers, out);
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl OomProbe {
    fn host_meminfo(&self) -> MemorySnapshot {
        let path = self.ctx.procfs("meminfo");
        match std::fs::read_to_string(&path) {
            Ok(text) => MemorySnapshot {
                host_meminfo: parse_meminfo(&text),
                errors: Vec::new(),
            },
            Err(e) => MemorySnapshot {
                host_meminfo: BTreeMap::new(),
                errors: vec![format!("{}: {e}", path.display())],
            },
        }
    }

    /// One side of the kill; `known` is its memory cgroup when already read for the other side.
    fn actor(
        &self,
        task: &OomTask,
        container: Option<&Container>,
        known: Option<MemcgSnapshot>,
    ) -> OomActor {
        OomActor {
            memory_cgroup_css_addr: if task.memcg_css == 0 {
                String::new()
            } else {
                format!("{:#018x}", task.memcg_css)
            },
            pid: task.pid,
            tid: task.tid,
            comm: task.comm.clone(),
            cgroup_id: task.cgroup_id,
            memory_cgroup_id: task.memcg_id,
            container_id: container.map(|c| c.id.clone()).unwrap_or_default(),
            container_hostname: container.map(|c| c.hostname.clone()).unwrap_or_default(),
            cgroup: container.map(|c| {
                known.unwrap_or_else(|| {
                    memcg_snapshot(
                        &self.ctx.cgroup.dir("memory", &c.cgroup_path),
                        &c.cgroup_path,
                    )
                })
            }),
        }
    }

    fn document(
        &self,
        containers: &ContainerSet,
        record: &OomRecord,
        memory_snapshot: MemorySnapshot,
    ) -> EventDocument {
        let victim_container = container_of(containers, &record.victim);
        let trigger_container = container_of(containers, &record.trigger);
        let victim = self.actor(&record.victim, victim_container, None);
        // Usually the trigger is in the victim's memcg (often it is the victim): read it once.
        let same_container = matches!(
            (trigger_container, victim_container),
            (Some(t), Some(v)) if t.id == v.id
        );
        let known = if same_container {
            victim.cgroup.clone()
        } else {
            None
        };
        let trigger = self.actor(&record.trigger, trigger_container, known);
        let data = OomData {
            columns: OomDashboardColumns::of(&trigger, &victim),
            trigger,
            victim,
            victim_uid: record.victim_uid,
            memory_snapshot,
        };
        event_ring::document_at(
            &self.ctx,
            NAME,
            victim_container,
            record.victim.cgroup_id,
            serde_json::to_value(&data).unwrap_or_default(),
            record.boot_ns,
        )
    }
}

#[cfg(test)]
mod tests;
