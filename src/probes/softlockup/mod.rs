//! softlockup: the kernel's own soft lockup report in its log (`watchdog: BUG: soft lockup -
//! CPU#3 stuck for 23s! [comm:pid]`, read from `/dev/kmsg`) becomes a `softlockup` document with
//! upstream's `cpu`, `pid`, `comm` and `cpus_stack` (and `tid`, `stuck_secs`); every report counts in
//! `huatuo_bamai_softlockup_total`.
//!
//! Upstream hooks `add_taint(TAINT_SOFTLOCKUP)` with a kprobe, which this kernel cannot run, and
//! then triggers sysrq `l` for every CPU's backtrace. The watchdog prints the report right before
//! it taints the kernel, with the stuck CPU's registers and stack after it (and every CPU's
//! backtrace when `kernel.softlockup_all_cpu_backtrace` is set): `cpus_stack` is the kernel log
//! of `stack_window_ms` from the report on, in upstream's `YYYY-MM-DD HH:MM:SS text` lines, so we
//! neither interrupt every CPU nor write to the node's log ourselves.
//!
//! Only kernel (facility 0) records count by default: user space writing to `/dev/kmsg` gets
//! facility `user`, so a process cannot fake a lockup; `kernel_messages_only = false` lets the
//! root test provoke the detection path by writing a report line, as a real lockup cannot be
//! provoked safely. Documents are backed off as hungtask's (10 min doubling to 3 h, decay 1 h).

mod kmsg;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::backoff::SaveBackoff;
use crate::probes::common::event_ring;

pub use kmsg::{unescape, Drained, KmsgError, KmsgReader, KmsgRecord, SoftLockupReport};

const NAME: &str = "softlockup";
/// Records handled per tick; the rest are read on the next tick.
const MAX_RECORDS_PER_TICK: usize = 8192;
/// Present when the kernel has a soft lockup detector (CONFIG_SOFTLOCKUP_DETECTOR).
const DETECTOR_SYSCTL: &str = "sys/kernel/soft_watchdog";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: the kernel's soft lockup reports ("BUG: soft lockup - CPU#N stuck for Ns! [comm:pid]"
/// in /dev/kmsg) -> `softlockup` documents (cpu, pid, comm, stuck_secs, cpus_stack: the kernel
/// log right after the report) and huatuo_bamai_softlockup_total. Inactive on kernels without a
/// soft lockup detector (no /proc/sys/kernel/soft_watchdog).
pub struct SoftlockupConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the kernel log is read: a report is counted within one interval.
    pub interval_ms: u64,
    /// The kernel log device (a file of /dev/kmsg lines works too); tailed from the agent's
    /// start, the log of the past is not read.
    pub kmsg_path: PathBuf,
    /// Count only the kernel's own records (facility kern). Off, a root process writing a
    /// report line to /dev/kmsg counts too: for testing the detection path.
    pub kernel_messages_only: bool,
    /// How long after a report the kernel log is gathered into `cpus_stack` (the stuck CPU's
    /// registers and stack, every CPU's backtrace with kernel.softlockup_all_cpu_backtrace).
    pub stack_window_ms: u64,
    /// Kernel log lines kept in one `cpus_stack`; more are left out.
    pub max_stack_lines: usize,
    /// After a document, further reports only count until this many seconds have passed; the
    /// period doubles with every further document (0: a document for every report).
    pub report_backoff_secs: u64,
    /// The longest backoff period the doubling reaches.
    pub report_backoff_max_secs: u64,
    /// With no document for the last period plus this long, the backoff starts over at
    /// `report_backoff_secs` (0: never).
    pub report_backoff_decay_secs: u64,
}

impl Default for SoftlockupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 500,
            kmsg_path: PathBuf::from("/dev/kmsg"),
            kernel_messages_only: true,
            stack_window_ms: 2000,
            max_stack_lines: 2048,
            report_backoff_secs: 600,
            report_backoff_max_secs: 3 * 3600,
            report_backoff_decay_secs: 3600,
        }
    }
}

crate::probe_settings!(SoftlockupConfig, "softlockup", |c: &SoftlockupConfig| {
    if c.report_backoff_max_secs < c.report_backoff_secs {
        return Err(format!(
            "report_backoff_max_secs ({}) is below report_backoff_secs ({})",
            c.report_backoff_max_secs, c.report_backoff_secs
        ));
    }
    if c.kmsg_path.as_os_str().is_empty() {
        return Err("kmsg_path is empty".into());
    }
    Ok(())
});

/// `tracer_data` of a softlockup document: upstream's `cpu`, `pid`, `comm`, `cpus_stack` (same
/// types), plus the thread id, how long the CPU was stuck, and the `blocked_processes_stack`
/// column upstream's dashboard table shows for softlockup (copied there from hungtask's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoftlockupData {
    pub cpu: u32,
    /// Process (thread group) id of the task that ran on the stuck CPU, from
    /// `/proc/<tid>/status`; the thread id when that task is gone.
    pub pid: u32,
    /// The thread id the kernel's report names.
    pub tid: u32,
    pub comm: String,
    pub cpus_stack: String,
    /// The kernel's "stuck for Ns".
    pub stuck_secs: u64,
    /// Always empty: no blocked-task dump is taken for a soft lockup.
    pub blocked_processes_stack: String,
}

/// A report waiting for the log lines that follow it.
struct Pending {
    report: SoftLockupReport,
    usec: u64,
    until: Instant,
    lines: Vec<String>,
}

pub struct SoftlockupProbe {
    reader: KmsgReader,
    kmsg_path: PathBuf,
    ctx: ProbeContext,
    kernel_only: bool,
    window: Duration,
    max_lines: usize,
    backoff: SaveBackoff,
    pending: Option<Pending>,
    reports_total: u64,
    /// Kernel log records that did not parse, garbled reports and log overruns.
    errors_total: u64,
    warned: bool,
}

impl Probe for SoftlockupProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = SoftlockupConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let detector = ctx.procfs(DETECTOR_SYSCTL);
        if !detector.exists() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!(
                    "{} missing: the kernel has no soft lockup detector (CONFIG_SOFTLOCKUP_DETECTOR)",
                    detector.display()
                ),
            });
        }
        let reader = KmsgReader::open(&settings.kmsg_path).map_err(|source| {
            let path = settings.kmsg_path.display().to_string();
            match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    ProbeError::Unsupported {
                        probe: NAME,
                        reason: format!("cannot read the kernel log {path}: {source}"),
                    }
                }
                _ => ProbeError::Read {
                    probe: NAME,
                    path,
                    source,
                },
            }
        })?;
        Ok(Self {
            reader,
            kmsg_path: settings.kmsg_path.clone(),
            ctx: ctx.clone(),
            kernel_only: settings.kernel_messages_only,
            window: Duration::from_millis(settings.stack_window_ms),
            max_lines: settings.max_stack_lines,
            backoff: SaveBackoff::new(
                Duration::from_secs(settings.report_backoff_secs),
                Duration::from_secs(settings.report_backoff_max_secs),
                Duration::from_secs(settings.report_backoff_decay_secs),
            ),
            pending: None,
            reports_total: 0,
            errors_total: 0,
            warned: false,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let drained =
            self.reader
                .drain(MAX_RECORDS_PER_TICK)
                .map_err(|source| ProbeError::Read {
                    probe: NAME,
                    path: self.kmsg_path.display().to_string(),
                    source,
                })?;
        self.errors_total += drained.overruns;
        let now = Instant::now();
        for record in drained.records {
            match record {
                Ok(record) => self.handle(record, now),
                Err(e) => self.count_error(&e),
            }
        }
        if self.pending.as_ref().is_some_and(|p| p.until <= now) {
            if let Some(pending) = self.pending.take() {
                let document = self.document(pending);
                self.ctx.events.publish(document);
            }
        }
        out.counter(
            "huatuo_bamai_softlockup_total",
            "Soft lockup reports of the kernel watchdog (BUG: soft lockup in the kernel log); cumulative.",
        )
        .push(vec![], self.reports_total as f64);
        out.counter(
            "huatuo_bamai_softlockup_kmsg_errors_total",
            "Kernel log records the softlockup probe could not parse, garbled soft lockup reports and log overruns; cumulative.",
        )
        .push(vec![], self.errors_total as f64);
        Ok(())
    }
}

impl SoftlockupProbe {
    fn handle(&mut self, record: KmsgRecord, now: Instant) {
        if let Some(pending) = &mut self.pending {
            if pending.lines.len() < self.max_lines {
                pending.lines.push(log_line(&record));
            }
        }
        if self.kernel_only && record.facility != 0 {
            return;
        }
        match SoftLockupReport::parse(&record.text) {
            None => {}
            Some(Err(e)) => self.count_error(&e),
            Some(Ok(report)) => {
                self.reports_total += 1;
                // One document gathers at a time; reports inside its window only count.
                if self.pending.is_none() && self.backoff.allow(now) {
                    self.pending = Some(Pending {
                        report,
                        usec: record.usec,
                        until: now + self.window,
                        lines: vec![log_line(&record)],
                    });
                }
            }
        }
    }

    fn count_error(&mut self, e: &KmsgError) {
        self.errors_total += 1;
        if !self.warned {
            self.warned = true;
            tracing::warn!(probe = NAME, error = %e, "kernel log record skipped (further ones only counted)");
        }
    }

    fn tgid_of(&self, tid: u32) -> Option<u32> {
        let status = std::fs::read_to_string(self.ctx.procfs(&format!("{tid}/status"))).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
    }

    fn document(&self, pending: Pending) -> EventDocument {
        let mut cpus_stack = pending.lines.join("\n");
        cpus_stack.push('\n');
        let tid = pending.report.pid;
        let data = SoftlockupData {
            cpu: pending.report.cpu,
            pid: self.tgid_of(tid).unwrap_or(tid),
            tid,
            comm: pending.report.comm,
            cpus_stack,
            stuck_secs: pending.report.stuck_secs,
            blocked_processes_stack: String::new(),
        };
        // Host document as upstream's: the stuck CPU's task is whatever ran there, not a
        // container's doing.
        event_ring::document_at(
            &self.ctx,
            NAME,
            None,
            0,
            serde_json::to_value(&data).unwrap_or_default(),
            pending.usec.saturating_mul(1000),
        )
    }
}

/// A record as upstream's kmsgutil prints it: `YYYY-MM-DD HH:MM:SS text` (UTC here, as our
/// document times).
pub fn log_line(record: &KmsgRecord) -> String {
    let at = event_ring::boot_ns_to_system_time(record.usec.saturating_mul(1000));
    let time = crate::events::document::go_time(at);
    format!("{} {}", &time[..19], record.text)
}

#[cfg(test)]
mod tests;
