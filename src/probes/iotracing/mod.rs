//! iotracing (AutoTracing, host): every `interval_ms` (5 s) turn `/proc/diskstats` into per-disk
//! util, await and rates; when one disk is above `util_threshold` (NVMe: and a read or write
//! rate threshold) or `await_threshold_ms` for two consecutive samples, capture for
//! `capture_secs` on a thread of its own: the BPF programs of iotracing.bpf.c (syscall
//! tracepoints read/write/pread64/pwrite64, tp_btf block_io_start, block_rq_issue,
//! block_rq_complete) count bytes per (process, file) with Q2C/D2C of the block requests, and
//! threads sleeping in io_schedule are kept with their kernel stacks (tp_btf sched_switch with
//! `in_iowait`, sched_wakeup). The programs
//! are attached for the window only. An `autotracing` document (`tracer_name = "iotracing"`,
//! upstream's `reason_snapshot`, `process_file_io_stats`, `io_schedule_timeout_stacks`) is
//! published, also when attaching failed (`failure_reason`). Cooldown per disk and global.

pub mod capture;
mod records;
mod report;
mod signal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::autotracing::Cooldown;
use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::{EventDocument, TracerType};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::diskio::{parse_diskstats_line, DiskStats};

pub use capture::ATTACHMENTS;
pub use records::{c_string, frames, BlockedRecord, FileCounters, FileKey, StallRecord};
pub use report::{
    aggregate, with_rates, FileIoStats, FileRow, IoScheduleStack, IotracingData,
    ProcessFileIoStats, ReasonSnapshot, TopFile,
};
pub use signal::{decide, disk_status, summary, DiskStatus, Reason, Thresholds};

const NAME: &str = "iotracing";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// AutoTracing iotracing: a disk's util or await above its threshold for two samples
/// (/proc/diskstats) → for capture_secs, top processes and files by bytes with inode, path and
/// Q2C/D2C, and stacks of tasks in io_schedule (syscall + block tracepoints, attached only then).
pub struct IotracingConfig {
    /// Turn the trigger on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// /proc/diskstats sampling period in ms (upstream: 5000).
    pub interval_ms: u64,
    /// Capture when a disk was busy more than this percent of two consecutive windows (upstream: 90).
    pub util_threshold: f64,
    /// Or when its mean read or write await was above this many ms in both (upstream: 100).
    pub await_threshold_ms: f64,
    /// NVMe disks also need a read rate above this many bytes/s… (upstream: 2000 MB/s).
    pub nvme_read_bps_threshold: f64,
    /// …or a write rate above this many bytes/s with their util (upstream: 1500 MB/s).
    pub nvme_write_bps_threshold: f64,
    /// Length of a capture in seconds (upstream: 10).
    pub capture_secs: u64,
    /// During a capture, the files counted so far are named (from /proc/<pid>/fd) this often, in ms.
    pub sample_ms: u64,
    /// Processes listed (upstream MaxProcDump: 10).
    pub max_processes: usize,
    /// Files listed per process (upstream MaxFilesPerProcDump: 5).
    pub max_files_per_process: usize,
    /// Threads that slept in io_schedule at least this many ms are listed (upstream: 100).
    pub stall_min_ms: u64,
    /// At most this many of them, longest first, with their stacks.
    pub max_stacks: usize,
    /// Quiet time per disk after a capture, in seconds.
    pub cooldown_secs: u64,
    /// Quiet time for every disk after any capture, in seconds (a capture covers the host).
    pub global_cooldown_secs: u64,
    /// Disks never watched: exact names, or prefixes written `name*` (upstream skips loop,
    /// ram, zram, fd and md devices; partitions are always skipped).
    pub device_excluded: Vec<String>,
}

impl Default for IotracingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            util_threshold: 90.0,
            await_threshold_ms: 100.0,
            nvme_read_bps_threshold: 2000.0 * 1024.0 * 1024.0,
            nvme_write_bps_threshold: 1500.0 * 1024.0 * 1024.0,
            capture_secs: 10,
            sample_ms: 500,
            max_processes: 10,
            max_files_per_process: 5,
            stall_min_ms: 100,
            max_stacks: 32,
            cooldown_secs: 1800,
            global_cooldown_secs: 300,
            device_excluded: ["loop*", "ram*", "zram*", "fd*", "md*", "sr*"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl IotracingConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Prefix).exclude("device_excluded", &self.device_excluded)
    }

    fn thresholds(&self) -> Thresholds {
        Thresholds {
            util_percent: self.util_threshold,
            await_ms: self.await_threshold_ms,
            nvme_read_bps: self.nvme_read_bps_threshold,
            nvme_write_bps: self.nvme_write_bps_threshold,
        }
    }

    fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("util_threshold", self.util_threshold),
            ("await_threshold_ms", self.await_threshold_ms),
            ("nvme_read_bps_threshold", self.nvme_read_bps_threshold),
            ("nvme_write_bps_threshold", self.nvme_write_bps_threshold),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{key} must be a non-negative number, not {value}"));
            }
        }
        if self.capture_secs == 0 || self.capture_secs > 600 {
            return Err(format!(
                "capture_secs must be 1..=600, not {}",
                self.capture_secs
            ));
        }
        if self.sample_ms < 50 {
            return Err(format!(
                "sample_ms must be at least 50, not {}",
                self.sample_ms
            ));
        }
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(IotracingConfig, "iotracing", IotracingConfig::check);

/// One watched disk's last sample and rates.
#[derive(Debug, Clone)]
struct DiskSample {
    major: u32,
    minor: u32,
    stats: DiskStats,
    status: Option<DiskStatus>,
}

pub struct IotracingProbe {
    ctx: ProbeContext,
    settings: IotracingConfig,
    diskstats: PathBuf,
    filter: NameFilter,
    disks: HashMap<String, DiskSample>,
    last_at: Instant,
    cooldown: Cooldown<String>,
    /// A capture thread exists (one at a time).
    running: Arc<AtomicBool>,
    /// Its programs are attached (the window is open).
    attached: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    captures_total: Arc<AtomicU64>,
    /// BPF run time of finished capture windows, ns (the sampler's budget counts it).
    capture_run_ns: Arc<AtomicU64>,
}

impl Drop for IotracingProbe {
    fn drop(&mut self) {
        // A capture in flight ends early and still publishes what it has.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `major minor` of a `/proc/diskstats` line.
fn device_numbers(line: &str) -> Option<(u32, u32)> {
    let mut fields = line.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

impl Probe for IotracingProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = IotracingConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let filter = settings.filter().map_err(invalid_config(NAME))?;
        let diskstats = ctx.procfs("diskstats");
        if !diskstats.exists() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!("{} missing: no procfs", diskstats.display()),
            });
        }
        Ok(Self {
            ctx: ctx.clone(),
            settings: settings.clone(),
            diskstats,
            filter,
            disks: HashMap::new(),
            last_at: Instant::now(),
            cooldown: Cooldown::new(
                Duration::from_secs(settings.global_cooldown_secs),
                Duration::from_secs(settings.cooldown_secs),
            ),
            running: Arc::new(AtomicBool::new(false)),
            attached: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            captures_total: Arc::new(AtomicU64::new(0)),
            capture_run_ns: Arc::new(AtomicU64::new(0)),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let text = file::read(NAME, &self.diskstats)?;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last_at).as_secs_f64();
        self.last_at = now;
        let thresholds = self.settings.thresholds();
        let mut disks = HashMap::new();
        let mut fired: Option<ReasonSnapshot> = None;
        for line in text.lines() {
            let (Ok(stats), Some((major, minor))) =
                (parse_diskstats_line(line), device_numbers(line))
            else {
                continue; // A malformed line (diskio reports those) skips only its device.
            };
            if !self.filter.matches(&stats.device) || self.is_partition(major, minor) {
                continue;
            }
            let previous = self.disks.get(&stats.device);
            let status = previous.and_then(|p| disk_status(&p.stats, &stats, elapsed));
            let reason = match (previous.and_then(|p| p.status), status) {
                (Some(before), Some(current)) => decide(
                    &before,
                    &current,
                    stats.device.starts_with("nvme"),
                    &thresholds,
                ),
                _ => None,
            };
            if let (Some(reason), Some(current), None) = (reason, status, &fired) {
                if self.cooldown.ready(&stats.device, now) && !self.running.load(Ordering::Relaxed)
                {
                    fired = Some(ReasonSnapshot {
                        kind: reason,
                        device: stats.device.clone(),
                        major_num: major,
                        minor_num: minor,
                        iostatus: current,
                        summary: summary(
                            reason,
                            &format!("{}({major}:{minor})", stats.device),
                            &current,
                            &thresholds,
                        ),
                    });
                }
            }
            disks.insert(
                stats.device.clone(),
                DiskSample {
                    major,
                    minor,
                    stats,
                    status,
                },
            );
        }
        self.disks = disks;
        if let Some(reason) = fired {
            self.cooldown.fired(reason.device.clone(), now);
            self.start_capture(reason);
        }
        let util = out.gauge(
            "huatuo_bamai_iotracing_disk_util_percent",
            "Share of the last sampling window a watched disk had I/O in flight, in percent (iotracing's signal).",
        );
        for (device, disk) in &self.disks {
            if let Some(status) = disk.status {
                util.push(
                    vec![
                        ("device", device.clone()),
                        ("dev", format!("{}:{}", disk.major, disk.minor)),
                    ],
                    status.io_util,
                );
            }
        }
        out.gauge(
            "huatuo_bamai_iotracing_capture_running",
            "1 while an iotracing capture window is open (its BPF programs attached), else 0.",
        )
        .push(
            vec![],
            u8::from(self.attached.load(Ordering::Relaxed)) as f64,
        );
        out.counter(
            "huatuo_bamai_iotracing_captures_total",
            "iotracing AutoTracing captures (documents written); cumulative.",
        )
        .push(vec![], self.captures_total.load(Ordering::Relaxed) as f64);
        Ok(())
    }

    fn capture_bpf_time(&self) -> Duration {
        Duration::from_nanos(self.capture_run_ns.load(Ordering::Relaxed))
    }
}

impl IotracingProbe {
    /// Partitions share their disk's queue: upstream watches whole disks only.
    fn is_partition(&self, major: u32, minor: u32) -> bool {
        self.ctx
            .sysfs_root
            .join(format!("dev/block/{major}:{minor}/partition"))
            .exists()
    }

    fn start_capture(&mut self, reason: ReasonSnapshot) {
        let plan = capture::CapturePlan {
            ctx: self.ctx.clone(),
            reason,
            duration: Duration::from_secs(self.settings.capture_secs),
            sample_every: Duration::from_millis(self.settings.sample_ms),
            max_processes: self.settings.max_processes,
            max_files: self.settings.max_files_per_process,
            max_stacks: self.settings.max_stacks,
            stall_min: Duration::from_millis(self.settings.stall_min_ms),
        };
        let running = self.running.clone();
        let stop = self.stop.clone();
        let attached = self.attached.clone();
        let total = self.captures_total.clone();
        let run_ns = self.capture_run_ns.clone();
        running.store(true, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("iotracing-capture".into())
            .spawn(move || {
                let data = capture::run(&plan, &stop, &attached);
                let ran: u64 = data.programs.iter().map(|p| p.run_time_ns).sum();
                run_ns.fetch_add(ran, Ordering::Relaxed);
                let mut document = EventDocument::new(
                    &plan.ctx.hostname,
                    &plan.ctx.region,
                    NAME,
                    None,
                    0,
                    serde_json::to_value(&data).unwrap_or_default(),
                );
                document.tracer_type = TracerType::Autotracing;
                total.fetch_add(1, Ordering::Relaxed);
                plan.ctx.events.publish(document);
                running.store(false, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            self.running.store(false, Ordering::Relaxed);
            tracing::warn!(probe = NAME, error = %e, "cannot start the capture thread");
        }
    }
}

#[cfg(test)]
mod tests;
