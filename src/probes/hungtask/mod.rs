//! hungtask: every task khungtaskd reports as hung (tp_btf `sched_process_hang`) becomes a
//! `hungtask` event document with the task's kernel stack and `hung_task_timeout_secs`,
//! attributed to the task's container; every report counts in `huatuo_bamai_hungtask_total`.
//! The kernel reports a hung task again on every check period while it stays hung, so a task's
//! documents are backed off (`report_backoff_secs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};
use crate::probes::{Probe, ProbeContext, ProbeError};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HungtaskConfig {
    pub enabled: bool,
    /// How often the ring buffer is drained: a report is published within one interval.
    pub interval_ms: u64,
    /// After a task's document, further reports of the same task only count until this many
    /// seconds have passed (0: a document for every report).
    pub report_backoff_secs: u64,
}

impl Default for HungtaskConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 200,
            report_backoff_secs: 600,
        }
    }
}

crate::probe_settings!(HungtaskConfig);

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

    /// A task's identity: its thread id and start time (a later task may reuse the id).
    fn task(&self) -> (u32, u64) {
        (self.tid, self.start_ns)
    }
}

/// Per-task backoff of documents: a task's first report is saved, further reports of the same
/// task only once `period` has passed since its last saved one.
#[derive(Debug)]
pub struct ReportBackoff {
    period: Duration,
    last_saved: HashMap<(u32, u64), Instant>,
}

impl ReportBackoff {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last_saved: HashMap::new(),
        }
    }

    /// True when a report of `task` at `now` gets a document (and remembers that it did).
    pub fn allow(&mut self, task: (u32, u64), now: Instant) -> bool {
        match self.last_saved.get(&task) {
            Some(saved) if now.saturating_duration_since(*saved) < self.period => false,
            _ => {
                self.last_saved.insert(task, now);
                true
            }
        }
    }

    /// Forgets tasks whose backoff ran out (memory stays bounded by the recently hung tasks).
    pub fn expire(&mut self, now: Instant) {
        let period = self.period;
        self.last_saved
            .retain(|_, saved| now.saturating_duration_since(*saved) < period);
    }

    pub fn tracked(&self) -> usize {
        self.last_saved.len()
    }
}

/// A kernel stack from `/proc/<pid>/task/<tid>/stack`, one `function+off/len` frame per line
/// (the `[<address>] ` column is dropped: it reads 0 unless kptr_restrict allows addresses).
pub fn parse_stack(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.trim();
            match line.split_once("] ") {
                Some((address, frame)) if address.starts_with("[<") => frame,
                _ => line,
            }
        })
        .filter(|frame| !frame.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The hung thread's kernel stack, read at event time (needs root; the task is still hung).
pub fn read_stack(procfs_root: &Path, pid: u32, tid: u32) -> Result<String, String> {
    let path = procfs_root.join(format!("{pid}/task/{tid}/stack"));
    std::fs::read_to_string(&path)
        .map(|text| parse_stack(&text))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `hung_task_timeout_secs` (0 when the administrator turned detection off).
pub fn read_timeout_secs(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `tracer_data` of a hungtask document (upstream's `tid`, `comm`, `hung_task_timeout_secs`,
/// plus the process id and this task's own stack; no sysrq dumps).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HungtaskData {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// The hung task's kernel stack, innermost frame first.
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hung_task_timeout_secs: Option<u64>,
}

pub struct HungtaskProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    timeout_sysctl: PathBuf,
    backoff: ReportBackoff,
    /// Every report seen since start (documented or backed off, and lost ones).
    reports_total: u64,
}

impl Probe for HungtaskProbe {
    const NAME: &'static str = NAME;
    type Settings = HungtaskConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.hungtask
    }

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
            backoff: ReportBackoff::new(Duration::from_secs(settings.report_backoff_secs)),
            reports_total: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self
            .ring
            .drain(MAX_REPORTS_PER_TICK, HungtaskRecord::decode);
        let now = Instant::now();
        self.backoff.expire(now);
        for record in records {
            self.reports_total += 1;
            if self.backoff.allow(record.task(), now) {
                let document = self.document(&record);
                self.ctx.events.publish(document);
            }
        }
        self.account_losses()?;
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
        let data = HungtaskData {
            pid: record.pid,
            tid: record.tid,
            comm: record.comm.clone(),
            stack,
            stack_error,
            hung_task_timeout_secs: read_timeout_secs(&self.timeout_sysctl),
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

    /// Reports the kernel could not queue (ring buffer full) or that did not decode still
    /// count; they are logged.
    fn account_losses(&mut self) -> Result<(), ProbeError> {
        let lost = self
            .programs
            .per_cpu_u64(LOST_MAP, 0)?
            .iter()
            .fold(0u64, |a, v| a.wrapping_add(*v));
        // Lost and undecodable reports still count as hung-task reports.
        self.reports_total += self.ring.account(NAME, lost);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
