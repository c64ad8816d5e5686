//! One capture window: load and attach `iotracing.bpf.c`, sample the host's tasks blocked in
//! `io_schedule*` and name the files the kernel counted (links of `/proc/<pid>/fd`) while the
//! processes still run, then read the counters, detach (drop the object) and build the body.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::containers::CgroupLayout;
use crate::core::probe::ProbeContext;
use crate::ebpf::{self, Attachment, BpfError, BpfProgramSet};
use crate::probes::common::ksyms::Symbolizer;

use super::records::{c_string, frames, BlockedRecord, FileCounters, FileKey, StallRecord};
use super::report::{
    aggregate, pdata_text, FileIoStats, FileRow, IoScheduleStack, IotracingData, ProgramRunTime,
    ReasonSnapshot,
};

const NAME: &str = "iotracing";
const FILES_MAP: &str = "IOT_FILES";

/// Every program of the capture and its hook (tracepoints only).
pub const ATTACHMENTS: [Attachment; 13] = [
    Attachment::syscall("on_enter_read", "sys_enter_read"),
    Attachment::syscall("on_enter_pread64", "sys_enter_pread64"),
    Attachment::syscall("on_enter_write", "sys_enter_write"),
    Attachment::syscall("on_enter_pwrite64", "sys_enter_pwrite64"),
    Attachment::syscall("on_exit_read", "sys_exit_read"),
    Attachment::syscall("on_exit_pread64", "sys_exit_pread64"),
    Attachment::syscall("on_exit_write", "sys_exit_write"),
    Attachment::syscall("on_exit_pwrite64", "sys_exit_pwrite64"),
    Attachment::tp_btf("on_block_io_start", "block_io_start"),
    Attachment::tp_btf("on_block_rq_issue", "block_rq_issue"),
    Attachment::tp_btf("on_block_rq_complete", "block_rq_complete"),
    Attachment::tp_btf("on_sched_switch", "sched_switch"),
    Attachment::tp_btf("on_sched_wakeup", "sched_wakeup"),
];

/// What one capture needs, cut from the probe's settings.
#[derive(Clone)]
pub struct CapturePlan {
    pub ctx: ProbeContext,
    pub reason: ReasonSnapshot,
    pub duration: Duration,
    pub sample_every: Duration,
    pub max_processes: usize,
    pub max_files: usize,
    pub max_stacks: usize,
    pub stall_min: Duration,
}

fn attach(stall_min: Duration) -> Result<BpfProgramSet, BpfError> {
    let stall_min_ns = stall_min.as_nanos() as u64;
    let bpf = ebpf::load_sized(
        NAME,
        crate::bpf_object!("iotracing"),
        &[],
        &[("stall_min_ns", stall_min_ns)],
        &[],
    )?;
    BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)
}

fn read_files(set: &BpfProgramSet) -> Result<Vec<(FileKey, FileCounters)>, BpfError> {
    set.hash_entries::<FileKey, FileCounters>(FILES_MAP)
}

/// A path found for a (process, file), and how.
#[derive(Debug, Clone)]
struct Named {
    path: String,
    source: &'static str,
}

/// Names each file of `entries` not named yet from the links of its process's open files:
/// one `/proc/<pid>/fd` scan per process; processes found gone are not tried again.
fn name_files(
    procfs: &Path,
    entries: &[(FileKey, FileCounters)],
    named: &mut HashMap<FileKey, Named>,
    gone: &mut HashSet<u32>,
) {
    let mut wanted: HashMap<u32, Vec<FileKey>> = HashMap::new();
    for (key, _) in entries {
        if key.ino != 0 && !named.contains_key(key) && !gone.contains(&key.tgid) {
            wanted.entry(key.tgid).or_default().push(*key);
        }
    }
    for (tgid, keys) in wanted {
        let Ok(fds) = std::fs::read_dir(procfs.join(format!("{tgid}/fd"))) else {
            gone.insert(tgid); // Exited: the kernel's name stands in.
            continue;
        };
        for fd in fds.flatten() {
            let link = fd.path();
            // `metadata` follows the link to the open file itself (works for deleted files).
            let Ok(meta) = std::fs::metadata(&link) else {
                continue;
            };
            let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
            let Some(key) = keys
                .iter()
                .find(|k| k.ino == meta.ino() && k.major() == major && k.minor() == minor)
            else {
                continue;
            };
            if let Ok(target) = std::fs::read_link(&link) {
                named.insert(
                    *key,
                    Named {
                        path: target.to_string_lossy().into_owned(),
                        source: "proc_fd",
                    },
                );
            }
        }
    }
}

/// The block device name of `major:minor` (`/sys/dev/block/M:m` links to it), or "".
fn dev_name(
    sysfs: &Path,
    major: u32,
    minor: u32,
    cache: &mut HashMap<(u32, u32), String>,
) -> String {
    cache
        .entry((major, minor))
        .or_insert_with(|| {
            std::fs::read_link(sysfs.join(format!("dev/block/{major}:{minor}")))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default()
        })
        .clone()
}

/// Where the default (v2) hierarchy is mounted: the cgroup root on v2, `unified` on hybrid.
fn unified_root(layout: &CgroupLayout) -> Option<&Path> {
    match layout {
        CgroupLayout::V2 { root } => Some(root),
        CgroupLayout::V1 { unified, .. } => unified.as_deref(),
    }
}

/// The default-hierarchy cgroup id of a process (`0::<path>` of /proc/<pid>/cgroup: its
/// directory's inode, what BPF's cgroup id is), 0 when there is none or the process is gone.
fn v2_cgroup_id(procfs: &Path, layout: &CgroupLayout, pid: u32) -> u64 {
    let Some(root) = unified_root(layout) else {
        return 0;
    };
    let Ok(text) = std::fs::read_to_string(procfs.join(format!("{pid}/cgroup"))) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|rel| std::fs::metadata(root.join(rel.trim_start_matches('/'))).ok())
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// A stall as read from the maps, before symbolization.
struct RawStall {
    tid: u32,
    tgid: u32,
    cpu: u32,
    comm: String,
    cgroup_id: u64,
    latency_ns: u64,
    count: u64,
    frames: Vec<u64>,
}

/// Finished sleeps (IOT_STALLS) and the tasks still asleep long enough (IOT_BLOCKED).
fn read_stalls(
    set: &BpfProgramSet,
    ctx: &ProbeContext,
    stall_min: Duration,
) -> Result<Vec<RawStall>, BpfError> {
    let procfs = ctx.procfs_root.as_path();
    let mut stalls: Vec<RawStall> = set
        .hash_entries::<u32, StallRecord>("IOT_STALLS")?
        .into_iter()
        .map(|(tid, s)| RawStall {
            tid,
            tgid: s.tgid,
            cpu: s.cpu,
            comm: c_string(&s.comm),
            cgroup_id: s.cgroup_id,
            latency_ns: s.latency_ns,
            count: s.count,
            frames: frames(&s.stack, s.stack_bytes).to_vec(),
        })
        .collect();
    let now = monotonic_ns();
    for (tid, b) in set.hash_entries::<u32, BlockedRecord>("IOT_BLOCKED")? {
        let latency_ns = now.saturating_sub(b.since_ns);
        if latency_ns < stall_min.as_nanos() as u64 {
            continue;
        }
        // Still asleep: gone or running tasks (their wakeup fell outside the window) are left out.
        let Ok(status) = std::fs::read_to_string(procfs.join(format!("{tid}/status"))) else {
            continue;
        };
        if !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('D'))
        {
            continue;
        }
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let tgid = field("Tgid:").parse().unwrap_or(tid);
        match stalls.iter_mut().find(|s| s.tid == tid) {
            // Asleep longer now than in any finished sleep: this sleep is the one to show.
            Some(s) if s.latency_ns < latency_ns => {
                s.latency_ns = latency_ns;
                s.count += 1;
                s.cpu = b.cpu;
                s.frames = frames(&b.stack, b.stack_bytes).to_vec();
            }
            Some(s) => s.count += 1,
            None => stalls.push(RawStall {
                tid,
                tgid,
                cpu: b.cpu,
                comm: field("Name:"),
                cgroup_id: v2_cgroup_id(procfs, &ctx.cgroup, tgid),
                latency_ns,
                count: 1,
                frames: frames(&b.stack, b.stack_bytes).to_vec(),
            }),
        }
    }
    Ok(stalls)
}

/// Runs one capture to its end (or until `stop`), detaching before it returns; `attached` is
/// true from the end of the attach attempt to the detach.
pub fn run(plan: &CapturePlan, stop: &AtomicBool, attached: &AtomicBool) -> IotracingData {
    run_with(plan, stop, attached, attach)
}

/// [`run`] with the attach step given (tests make it fail).
pub fn run_with(
    plan: &CapturePlan,
    stop: &AtomicBool,
    attached: &AtomicBool,
    attach: impl FnOnce(Duration) -> Result<BpfProgramSet, BpfError>,
) -> IotracingData {
    let procfs = plan.ctx.procfs_root.clone();
    let started = Instant::now();
    let deadline = started + plan.duration;
    let (session, failure_reason) = match attach(plan.stall_min) {
        Ok(set) => (Some(set), String::new()),
        Err(e) => (None, format!("{e:#}")),
    };
    attached.store(true, Ordering::Relaxed);
    let mut named = HashMap::new();
    let mut gone = HashSet::new();
    let mut stalls = Vec::new();
    let mut failure_reason = failure_reason;
    loop {
        if let Some(set) = &session {
            if let Ok(entries) = read_files(set) {
                name_files(&procfs, &entries, &mut named, &mut gone);
            }
        }
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(plan.sample_every.min(deadline - now));
    }
    let mut entries = Vec::new();
    let mut programs = Vec::new();
    if let Some(set) = session {
        match read_files(&set) {
            Ok(read) => {
                name_files(&procfs, &read, &mut named, &mut gone);
                entries = read;
            }
            Err(e) => failure_reason = format!("{e:#}"),
        }
        match read_stalls(&set, &plan.ctx, plan.stall_min) {
            Ok(read) => stalls = read,
            Err(e) => failure_reason = format!("{e:#}"),
        }
        programs = set
            .costs()
            .into_iter()
            .map(|c| ProgramRunTime {
                program: c.program,
                run_count: c.run_count,
                run_time_ns: c.run_time.as_nanos() as u64,
            })
            .collect();
        drop(set); // Detaches every program: nothing runs between captures.
    }
    attached.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let rows = rows_of(plan, &entries, &named);
    let (process_file_io_stats, top_files) = aggregate(
        rows,
        elapsed.as_secs_f64(),
        plan.max_processes,
        plan.max_files,
    );
    IotracingData {
        dev: plan.reason.device.clone(),
        triger_type: plan.reason.kind.as_str().to_string(),
        reason: plan.reason.summary.clone(),
        status: (&plan.reason.iostatus).into(),
        pdata: pdata_text(&process_file_io_stats),
        reason_snapshot: plan.reason.clone(),
        failure_reason,
        process_file_io_stats,
        io_schedule_timeout_stacks: stall_list(plan, stalls),
        top_files,
        capture_ms: elapsed.as_millis() as u64,
        programs,
    }
}

fn rows_of(
    plan: &CapturePlan,
    entries: &[(FileKey, FileCounters)],
    named: &HashMap<FileKey, Named>,
) -> Vec<FileRow> {
    let containers = plan.ctx.containers.borrow().clone();
    let mut devs = HashMap::new();
    let mut comms: HashMap<u32, Option<String>> = HashMap::new();
    entries
        .iter()
        .map(|(key, c)| {
            let kernel_name = c_string(&c.name);
            let (path, source) = match named.get(key) {
                Some(n) => (n.path.clone(), n.source),
                None if !kernel_name.is_empty() => (kernel_name, "dentry"),
                None => (String::new(), "none"),
            };
            let per_request = |sum: u64| sum.checked_div(c.requests).unwrap_or(0) / 1000;
            let container = containers.of_task(c.cgroup_id, 0);
            // The process's name, not the thread's the kernel saw first.
            let comm = comms
                .entry(key.tgid)
                .or_insert_with(|| {
                    std::fs::read_to_string(plan.ctx.procfs(&format!("{}/comm", key.tgid)))
                        .ok()
                        .map(|s| s.trim().to_string())
                })
                .clone()
                .unwrap_or_else(|| c_string(&c.comm));
            FileRow {
                pid: key.tgid,
                comm,
                container_id: container.map(|c| c.id.clone()).unwrap_or_default(),
                container_hostname: container.map(|c| c.hostname.clone()).unwrap_or_default(),
                file: FileIoStats {
                    major: key.major(),
                    minor: key.minor(),
                    dev_name: dev_name(&plan.ctx.sysfs_root, key.major(), key.minor(), &mut devs),
                    inode: key.ino,
                    path,
                    is_direct: c.is_direct != 0,
                    q2c_us: per_request(c.q2c_sum_ns),
                    d2c_us: per_request(c.d2c_sum_ns),
                    max_q2c_us: c.q2c_max_ns / 1000,
                    max_d2c_us: c.d2c_max_ns / 1000,
                    fs_read_bytes: c.fs_read_bytes,
                    fs_write_bytes: c.fs_write_bytes,
                    disk_read_bytes: c.disk_read_bytes,
                    disk_write_bytes: c.disk_write_bytes,
                    requests: c.requests,
                    path_source: source,
                    ..Default::default()
                },
            }
        })
        .collect()
}

fn stall_list(plan: &CapturePlan, stalls: Vec<RawStall>) -> Vec<IoScheduleStack> {
    let containers = plan.ctx.containers.borrow().clone();
    let mut symbols = Symbolizer::default();
    let addrs: Vec<u64> = stalls
        .iter()
        .flat_map(|s| s.frames.iter().copied())
        .collect();
    symbols.resolve(&plan.ctx.procfs("kallsyms"), &addrs);
    let mut list: Vec<IoScheduleStack> = stalls
        .into_iter()
        .map(|s| IoScheduleStack {
            pid: s.tgid,
            tid: s.tid,
            cpu: s.cpu,
            comm: s.comm,
            container_hostname: containers
                .of_task(s.cgroup_id, 0)
                .map(|c| c.hostname.clone())
                .unwrap_or_default(),
            schedule_latency_us: s.latency_ns / 1000,
            stack: symbols
                .stack(&s.frames)
                .lines()
                .map(str::to_string)
                .collect(),
            count: s.count,
        })
        .collect();
    list.sort_by(|a, b| {
        b.schedule_latency_us
            .cmp(&a.schedule_latency_us)
            .then(a.tid.cmp(&b.tid))
    });
    list.truncate(plan.max_stacks);
    list
}
