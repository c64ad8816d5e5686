//! hungtask: a task khungtaskd reports as hung (tp_btf `sched_process_hang`) becomes a
//! `hungtask` event document with the task's kernel stack, the kernel stacks of every task
//! blocked in D state at that moment, and `hung_task_timeout_secs`, attributed to the hung
//! task's container; every report counts in `huatuo_bamai_hungtask_total`.
//!
//! Documents are backed off as upstream's: after one is saved, reports only count for
//! `report_backoff_secs` (10 min), and the period doubles with each further saved document up to
//! `report_backoff_max_secs` (3 h); once no document was saved for the last period plus
//! `report_backoff_decay_secs` (1 h), it starts again at the initial period. The backoff is
//! global, not per task: every document already carries all blocked tasks, and a storage stall
//! hanging hundreds of tasks must not write hundreds of documents of hundreds of stacks each.
//!
//! The blocked tasks' stacks come from `/proc/<pid>/task/<tid>/stack` of every task whose state
//! is `D`, not from upstream's sysrq-w dump through `/dev/kmsg`: that dump writes every blocked
//! task (and the scheduler state of every CPU) into the kernel log of the node, interleaves with
//! other kernel messages, must be parsed back out of the ring buffer, and fails when the log
//! rate limit or `kernel.printk` drops lines; procfs gives each task's stack apart, costs one
//! `stat` read per task plus one stack read per blocked task, and leaves the kernel log alone.

mod procfs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};

pub use crate::probes::common::backoff::SaveBackoff;
pub use procfs::{
    blocked_processes_text, blocked_tasks, parse_stack, parse_stat, read_stack, read_timeout_secs,
    BlockedTask,
};

const NAME: &str = "hungtask";
const EVENTS_MAP: &str = "HUNGTASK_EVENTS";
const LOST_MAP: &str = "HUNGTASK_LOST";
/// Reports handled per tick; the rest wait in the ring buffer for the next tick.
const MAX_REPORTS_PER_TICK: usize = 4096;
/// The sysctl below `procfs_root`; absent on kernels without CONFIG_DETECT_HUNG_TASK.
const TIMEOUT_SYSCTL: &str = "sys/kernel/hung_task_timeout_secs";
const ATTACHMENTS: [Attachment; 1] = [Attachment {
    program: "on_sched_process_hang",
    hook: Hook::TpBtf("sched_process_hang"),
}];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: tasks khungtaskd reports as hung (tp_btf sched/sched_process_hang) -> `hungtask`
/// documents (pid, tid, comm, the task's kernel stack from /proc/<pid>/task/<tid>/stack, every
/// D-state task with its stack, hung_task_timeout_secs) and huatuo_bamai_hungtask_total. Inactive
/// on kernels without a hung task detector (no /proc/sys/kernel/hung_task_timeout_secs).
pub struct HungtaskConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the ring buffer is drained: a report is published within one interval.
    pub interval_ms: u64,
    /// After a document, further reports only count until this many seconds have passed; the
    /// period doubles with every further document (0: a document for every report).
    pub report_backoff_secs: u64,
    /// The longest backoff period the doubling reaches.
    pub report_backoff_max_secs: u64,
    /// With no document for the last period plus this long, the backoff starts over at
    /// `report_backoff_secs` (0: never).
    pub report_backoff_decay_secs: u64,
    /// Blocked (D state) tasks listed with their stacks in a document; more are only counted.
    pub max_blocked_tasks: usize,
}

impl Default for HungtaskConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 200,
            report_backoff_secs: 600,
            report_backoff_max_secs: 3 * 3600,
            report_backoff_decay_secs: 3600,
            max_blocked_tasks: 256,
        }
    }
}

crate::probe_settings!(HungtaskConfig, "hungtask", |c: &HungtaskConfig| {
    if c.report_backoff_max_secs < c.report_backoff_secs {
        return Err(format!(
            "report_backoff_max_secs ({}) is below report_backoff_secs ({})",
            c.report_backoff_max_secs, c.report_backoff_secs
        ));
    }
    Ok(())
});

impl HungtaskConfig {
    fn backoff(&self) -> SaveBackoff {
        SaveBackoff::new(
            Duration::from_secs(self.report_backoff_secs),
            Duration::from_secs(self.report_backoff_max_secs),
            Duration::from_secs(self.report_backoff_decay_secs),
        )
    }
}

/// One `struct hungtask_event` of hungtask.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HungtaskRecord {
    pub boot_ns: u64,
    pub cgroup_id: u64,
    pub start_ns: u64,
    /// Thread id.
    pub tid: u32,
    /// Process id.
    pub pid: u32,
    pub comm: String,
}

impl HungtaskRecord {
    pub const SIZE: usize = 48;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        Some(Self {
            boot_ns: event_ring::u64_at(bytes, 0)?,
            cgroup_id: event_ring::u64_at(bytes, 8)?,
            start_ns: event_ring::u64_at(bytes, 16)?,
            tid: event_ring::u32_at(bytes, 24)?,
            pid: event_ring::u32_at(bytes, 28)?,
            comm: event_ring::comm_at(bytes, 32)?,
        })
    }
}

/// `tracer_data` of a hungtask document: upstream's `tid`, `comm`, `cpus_stack`,
/// `blocked_processes_stack` and `hung_task_timeout_secs` (same types), plus the process id, this
/// task's own stack and the blocked tasks as a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HungtaskData {
    /// The hung task: pid, tid, comm and its kernel stack, innermost frame first.
    #[serde(flatten)]
    pub task: BlockedTask,
    /// Upstream's sysrq `l` dump (every CPU's backtrace, by NMI); always empty here: we do not
    /// interrupt every CPU and write into the node's kernel log for a document.
    pub cpus_stack: String,
    /// The D-state tasks and their stacks as text in the shape of sysrq `w`
    /// ([`blocked_processes_text`]), from procfs.
    pub blocked_processes_stack: String,
    /// As upstream: -1 when unreadable, 0 when the administrator turned detection off.
    pub hung_task_timeout_secs: i64,
    /// Every task in D state when the document was made (the hung one included), by pid.
    pub blocked_tasks: Vec<BlockedTask>,
    /// How many tasks were in D state; more than `blocked_tasks` holds when over
    /// `max_blocked_tasks`.
    pub blocked_tasks_total: usize,
}

pub struct HungtaskProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    timeout_sysctl: PathBuf,
    backoff: SaveBackoff,
    max_blocked_tasks: usize,
    /// Every report seen since start (documented or backed off, and lost ones).
    reports_total: u64,
}

impl Probe for HungtaskProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = HungtaskConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let timeout_sysctl = ctx.procfs(TIMEOUT_SYSCTL);
        if !timeout_sysctl.exists() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!(
                    "{} missing: the kernel has no hung task detector (CONFIG_DETECT_HUNG_TASK)",
                    timeout_sysctl.display()
                ),
            });
        }
        let bpf = ebpf::load(NAME, crate::bpf_object!("hungtask"), &[])?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            timeout_sysctl,
            backoff: settings.backoff(),
            max_blocked_tasks: settings.max_blocked_tasks,
            reports_total: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self
            .ring
            .drain(MAX_REPORTS_PER_TICK, HungtaskRecord::decode);
        let now = Instant::now();
        for record in records {
            self.reports_total += 1;
            if self.backoff.allow(now) {
                let document = self.document(&record);
                self.ctx.events.publish(document);
            }
        }
        // Reports the kernel could not queue (ring buffer full) or that did not decode are
        // logged, and still count as hung-task reports.
        self.reports_total += self
            .ring
            .account_losses(NAME, &self.programs, LOST_MAP, 0)?;
        out.counter(
            "huatuo_bamai_hungtask_total",
            "Hung task reports of khungtaskd (sched_process_hang), one per hung task and check period; cumulative.",
        )
        .push(vec![], self.reports_total as f64);
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl HungtaskProbe {
    fn document(&self, record: &HungtaskRecord) -> EventDocument {
        let (stack, stack_error) = match read_stack(&self.ctx.procfs_root, record.pid, record.tid) {
            Ok(stack) => (stack, None),
            Err(e) => (String::new(), Some(e)),
        };
        let (blocked_tasks, blocked_tasks_total) =
            blocked_tasks(&self.ctx.procfs_root, self.max_blocked_tasks);
        let data = HungtaskData {
            task: BlockedTask {
                pid: record.pid,
                tid: record.tid,
                comm: record.comm.clone(),
                stack,
                stack_error,
            },
            cpus_stack: String::new(),
            blocked_processes_stack: blocked_processes_text(&blocked_tasks),
            hung_task_timeout_secs: read_timeout_secs(&self.timeout_sysctl)
                .and_then(|secs| i64::try_from(secs).ok())
                .unwrap_or(-1),
            blocked_tasks,
            blocked_tasks_total,
        };
        let containers = self.ctx.containers.borrow().clone();
        let container = containers.by_cgroup_id(record.cgroup_id);
        event_ring::document_at(
            &self.ctx,
            NAME,
            container.map(|c| c.as_ref()),
            record.cgroup_id,
            serde_json::to_value(&data).unwrap_or_default(),
            record.boot_ns,
        )
    }
}

#[cfg(test)]
mod tests;
