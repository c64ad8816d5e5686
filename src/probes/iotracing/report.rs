//! The capture's document body: per (process, file) counters from the kernel, grouped into
//! upstream's `process_file_io_stats` (top processes, each with its top files) and ranked by
//! bytes. Pure: the capture resolves paths and containers first.

use serde::Serialize;

use super::signal::{DiskStatus, Reason};

/// One file of one process (upstream's `FileIOStats`, plus the byte counts behind the rates).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileIoStats {
    pub major: u32,
    pub minor: u32,
    pub dev_name: String,
    /// 0: block I/O of the process no file could be named for (metadata, journal).
    pub inode: u64,
    pub path: String,
    pub is_direct: bool,
    pub fs_read_bps: u64,
    pub fs_write_bps: u64,
    pub disk_read_bps: u64,
    pub disk_write_bps: u64,
    /// Mean per block request, µs.
    pub q2c_us: u64,
    pub d2c_us: u64,
    pub max_q2c_us: u64,
    pub max_d2c_us: u64,
    pub fs_read_bytes: u64,
    pub fs_write_bytes: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    /// Block requests completed for this file in the window.
    pub requests: u64,
    /// How `path` was found: `proc_fd` (a link of the process's open files: full path),
    /// `dentry` (the file's name from the kernel, no directories), `none` (inode only).
    pub path_source: &'static str,
}

impl FileIoStats {
    fn total_bytes(&self) -> u64 {
        self.fs_read_bytes
            .saturating_add(self.fs_write_bytes)
            .saturating_add(self.disk_read_bytes)
            .saturating_add(self.disk_write_bytes)
    }
}

/// Upstream's `ProcessFileIOStats`, plus the container id and byte totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessFileIoStats {
    pub pid: u32,
    pub comm: String,
    pub container_hostname: String,
    pub container_id: String,
    pub total_fs_read_bps: u64,
    pub total_fs_write_bps: u64,
    pub total_disk_read_bps: u64,
    pub total_disk_write_bps: u64,
    pub total_fs_read_bytes: u64,
    pub total_fs_write_bytes: u64,
    pub total_disk_read_bytes: u64,
    pub total_disk_write_bytes: u64,
    /// The top files, at most `max_files_per_process`.
    pub total_files: Vec<FileIoStats>,
    /// Files before truncation.
    pub total_file_count: usize,
}

/// A file in the host-wide ranking, with its process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopFile {
    pub pid: u32,
    pub comm: String,
    #[serde(flatten)]
    pub file: FileIoStats,
}

/// A (process, file) row as the capture resolved it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileRow {
    pub pid: u32,
    pub comm: String,
    pub container_id: String,
    pub container_hostname: String,
    pub file: FileIoStats,
}

/// A thread that slept in io_schedule at least `stall_min_ms` in the window (upstream's
/// `IOScheduleEvent`): its longest such sleep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IoScheduleStack {
    pub pid: u32,
    pub tid: u32,
    /// The CPU it went to sleep on.
    pub cpu: u32,
    pub comm: String,
    pub container_hostname: String,
    /// Its longest sleep (a sleep still going on at the end counts up to then).
    pub schedule_latency_us: u64,
    /// Kernel stack at the sleep, innermost first.
    pub stack: Vec<String>,
    /// Its sleeps of at least `stall_min_ms` in the window.
    pub count: u64,
}

/// Upstream's `reason_snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonSnapshot {
    #[serde(rename = "type")]
    pub kind: Reason,
    pub device: String,
    pub major_num: u32,
    pub minor_num: u32,
    pub iostatus: DiskStatus,
    pub summary: String,
}

/// Run time of one capture program (zero unless bpf_stats is on).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramRunTime {
    pub program: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// The `status` of upstream's earlier iotracing documents, which its event dashboard's details
/// panel still shows (`read_iowait`/`write_iowait` are the awaits, ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DashboardStatus {
    pub io_util: f64,
    pub queue_size: f64,
    pub read_bps: f64,
    pub read_iops: f64,
    pub read_iowait: f64,
    pub write_bps: f64,
    pub write_iops: f64,
    pub write_iowait: f64,
}

impl From<&DiskStatus> for DashboardStatus {
    fn from(s: &DiskStatus) -> Self {
        Self {
            io_util: s.io_util,
            queue_size: s.queue_size,
            read_bps: s.read_bps,
            read_iops: s.read_iops,
            read_iowait: s.read_await,
            write_bps: s.write_bps,
            write_iops: s.write_iops,
            write_iowait: s.write_await,
        }
    }
}

/// One line per listed process for the dashboard's `pdata` column:
/// `pid comm: fs w/r B, disk w/r B, top file`.
pub fn pdata_text(processes: &[ProcessFileIoStats]) -> String {
    processes
        .iter()
        .map(|p| {
            format!(
                "{} {}: fs write {} read {} B, disk write {} read {} B, top file {}",
                p.pid,
                p.comm,
                p.total_fs_write_bytes,
                p.total_fs_read_bytes,
                p.total_disk_write_bytes,
                p.total_disk_read_bytes,
                p.total_files
                    .first()
                    .map(|f| if f.path.is_empty() {
                        format!("inode {}", f.inode)
                    } else {
                        f.path.clone()
                    })
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `tracer_data` of an `iotracing` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IotracingData {
    pub reason_snapshot: ReasonSnapshot,
    /// Why the BPF part of the capture did not run (the document still carries the stacks).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub failure_reason: String,
    pub process_file_io_stats: Vec<ProcessFileIoStats>,
    pub io_schedule_timeout_stacks: Vec<IoScheduleStack>,
    pub top_files: Vec<TopFile>,
    pub capture_ms: u64,
    pub programs: Vec<ProgramRunTime>,
    /// Upstream's earlier names the event dashboard's details panel reads: the disk…
    pub dev: String,
    /// …the trigger's reason type and summary…
    pub triger_type: String,
    pub reason: String,
    /// …its iostat…
    pub status: DashboardStatus,
    /// …and the processes as text.
    pub pdata: String,
}

fn rate(bytes: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

/// Fills the `*_bps` fields of a file from its byte counts over `secs`.
pub fn with_rates(mut file: FileIoStats, secs: f64) -> FileIoStats {
    file.fs_read_bps = rate(file.fs_read_bytes, secs);
    file.fs_write_bps = rate(file.fs_write_bytes, secs);
    file.disk_read_bps = rate(file.disk_read_bytes, secs);
    file.disk_write_bps = rate(file.disk_write_bytes, secs);
    file
}

/// Groups rows by process, ranks processes and their files by bytes (all four counts), keeps
/// `max_processes` × `max_files`; rows that moved no byte are left out. Also the host's top
/// `max_processes` files.
pub fn aggregate(
    rows: Vec<FileRow>,
    secs: f64,
    max_processes: usize,
    max_files: usize,
) -> (Vec<ProcessFileIoStats>, Vec<TopFile>) {
    let mut rows: Vec<FileRow> = rows
        .into_iter()
        .filter(|r| r.file.total_bytes() > 0)
        .map(|mut r| {
            r.file = with_rates(r.file, secs);
            r
        })
        .collect();
    rows.sort_by(|a, b| {
        b.file
            .total_bytes()
            .cmp(&a.file.total_bytes())
            .then(a.pid.cmp(&b.pid))
            .then(a.file.inode.cmp(&b.file.inode))
    });
    let top_files = rows
        .iter()
        .take(max_processes)
        .map(|r| TopFile {
            pid: r.pid,
            comm: r.comm.clone(),
            file: r.file.clone(),
        })
        .collect();
    let mut processes: Vec<ProcessFileIoStats> = Vec::new();
    for row in rows {
        let index = match processes.iter().position(|p| p.pid == row.pid) {
            Some(i) => i,
            None => {
                processes.push(ProcessFileIoStats {
                    pid: row.pid,
                    comm: row.comm.clone(),
                    container_hostname: row.container_hostname.clone(),
                    container_id: row.container_id.clone(),
                    ..Default::default()
                });
                processes.len() - 1
            }
        };
        let p = &mut processes[index];
        p.total_fs_read_bytes += row.file.fs_read_bytes;
        p.total_fs_write_bytes += row.file.fs_write_bytes;
        p.total_disk_read_bytes += row.file.disk_read_bytes;
        p.total_disk_write_bytes += row.file.disk_write_bytes;
        p.total_file_count += 1;
        // Rows arrive ranked: the first `max_files` of a process are its top files.
        if p.total_files.len() < max_files {
            p.total_files.push(row.file);
        }
    }
    for p in &mut processes {
        p.total_fs_read_bps = rate(p.total_fs_read_bytes, secs);
        p.total_fs_write_bps = rate(p.total_fs_write_bytes, secs);
        p.total_disk_read_bps = rate(p.total_disk_read_bytes, secs);
        p.total_disk_write_bps = rate(p.total_disk_write_bytes, secs);
    }
    let total = |p: &ProcessFileIoStats| {
        p.total_fs_read_bytes
            + p.total_fs_write_bytes
            + p.total_disk_read_bytes
            + p.total_disk_write_bytes
    };
    processes.sort_by(|a, b| total(b).cmp(&total(a)).then(a.pid.cmp(&b.pid)));
    processes.truncate(max_processes);
    (processes, top_files)
}
