//! iotracing's signal: per-disk rates between two `/proc/diskstats` samples (upstream's
//! `buildDiskMetric`) and the pure decision over the previous and current rates.

use serde::Serialize;

use crate::probes::diskio::DiskStats;

/// `/proc/diskstats` counts 512-byte sectors whatever the device's block size.
const SECTOR_BYTES: f64 = 512.0;

/// Upstream's `iostatus`: rates over one sampling window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DiskStatus {
    pub read_bps: f64,
    pub read_iops: f64,
    /// Mean ms per completed read in the window.
    pub read_await: f64,
    pub write_bps: f64,
    pub write_iops: f64,
    pub write_await: f64,
    /// Percent of the window the disk had I/O in flight.
    pub io_util: f64,
    /// Mean requests in flight (aqu-sz).
    pub queue_size: f64,
}

/// Rates between two samples of one disk `elapsed_secs` apart; `None` when a counter went
/// backwards (the device was removed and re-registered) or no time passed.
pub fn disk_status(
    previous: &DiskStats,
    current: &DiskStats,
    elapsed_secs: f64,
) -> Option<DiskStatus> {
    if elapsed_secs <= 0.0 {
        return None;
    }
    let delta = |a: u64, b: u64| b.checked_sub(a);
    let reads = delta(previous.reads, current.reads)?;
    let writes = delta(previous.writes, current.writes)?;
    let read_ms = delta(previous.read_ms, current.read_ms)?;
    let write_ms = delta(previous.write_ms, current.write_ms)?;
    let io_ms = delta(previous.io_ms, current.io_ms)?;
    let weighted = delta(previous.weighted_io_ms, current.weighted_io_ms)?;
    let read_sectors = delta(previous.sectors_read, current.sectors_read)?;
    let write_sectors = delta(previous.sectors_written, current.sectors_written)?;
    let per_io = |ms: u64, ios: u64| if ios > 0 { ms as f64 / ios as f64 } else { 0.0 };
    Some(DiskStatus {
        read_bps: read_sectors as f64 * SECTOR_BYTES / elapsed_secs,
        read_iops: reads as f64 / elapsed_secs,
        read_await: per_io(read_ms, reads),
        write_bps: write_sectors as f64 * SECTOR_BYTES / elapsed_secs,
        write_iops: writes as f64 / elapsed_secs,
        write_await: per_io(write_ms, writes),
        io_util: (io_ms as f64 / (elapsed_secs * 1000.0) * 100.0).min(100.0),
        queue_size: weighted as f64 / (elapsed_secs * 1000.0),
    })
}

/// The thresholds of the decision (upstream's `[AutoTracing.IOTracing]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub util_percent: f64,
    pub await_ms: f64,
    /// NVMe disks are busy at low load: they also need this read rate (bytes/s)…
    pub nvme_read_bps: f64,
    /// …or this write rate.
    pub nvme_write_bps: f64,
}

/// Why a capture starts (upstream's reason `type` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    #[serde(rename = "ioutil")]
    IoUtil,
    ReadBps,
    WriteBps,
    ReadAwait,
    WriteAwait,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IoUtil => "ioutil",
            Reason::ReadBps => "read_bps",
            Reason::WriteBps => "write_bps",
            Reason::ReadAwait => "read_await",
            Reason::WriteAwait => "write_await",
        }
    }
}

/// Upstream's rule over two consecutive windows: util above the threshold in both (on NVMe
/// with a read or write rate above its threshold too), else read or write await above the
/// threshold in both.
pub fn decide(
    previous: &DiskStatus,
    current: &DiskStatus,
    nvme: bool,
    t: &Thresholds,
) -> Option<Reason> {
    let both = |f: fn(&DiskStatus) -> f64, limit: f64| f(previous) > limit && f(current) > limit;
    if both(|s| s.io_util, t.util_percent) {
        if !nvme {
            return Some(Reason::IoUtil);
        }
        if both(|s| s.read_bps, t.nvme_read_bps) {
            return Some(Reason::ReadBps);
        }
        if both(|s| s.write_bps, t.nvme_write_bps) {
            return Some(Reason::WriteBps);
        }
    }
    if both(|s| s.read_await, t.await_ms) {
        return Some(Reason::ReadAwait);
    }
    if both(|s| s.write_await, t.await_ms) {
        return Some(Reason::WriteAwait);
    }
    None
}

/// Upstream's `summary` line of the reason snapshot.
pub fn summary(reason: Reason, device: &str, status: &DiskStatus, t: &Thresholds) -> String {
    match reason {
        Reason::IoUtil => format!(
            "{device}: io util {:.1}% > {}% for two samples",
            status.io_util, t.util_percent
        ),
        Reason::ReadBps => format!(
            "{device}: io util {:.1}% > {}% and read {:.0} B/s > {} B/s for two samples",
            status.io_util, t.util_percent, status.read_bps, t.nvme_read_bps
        ),
        Reason::WriteBps => format!(
            "{device}: io util {:.1}% > {}% and write {:.0} B/s > {} B/s for two samples",
            status.io_util, t.util_percent, status.write_bps, t.nvme_write_bps
        ),
        Reason::ReadAwait => format!(
            "{device}: read await {:.1} ms > {} ms for two samples",
            status.read_await, t.await_ms
        ),
        Reason::WriteAwait => format!(
            "{device}: write await {:.1} ms > {} ms for two samples",
            status.write_await, t.await_ms
        ),
    }
}
