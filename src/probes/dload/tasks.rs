//! A cgroup's tasks by scheduler state, read from procfs: the cgroup's thread list
//! (`cgroup.threads` on v2, `tasks` on v1) and each thread's `/proc/<tid>/stat` state letter.
//! Upstream asks taskstats (`CGROUPSTATS_CMD_GET`, cgroup v1 only); the letters give the same
//! counts on every layout.

use std::path::Path;

use serde::Serialize;

/// Counts by state, upstream's field names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    pub nr_sleeping: u64,
    pub nr_running: u64,
    pub nr_stopped: u64,
    pub nr_uninterruptible: u64,
    /// D-state tasks sleeping in `io_schedule*` (their `wchan`).
    pub nr_iowait: u64,
}

/// A thread of the cgroup in D state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DTask {
    pub tid: u32,
}

/// `comm` and the state letter of a `/proc/<tid>/stat` (the comm is everything between the
/// first `(` and the last `)`: it may hold spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<(String, char)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let state = text.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
}

/// Adds one thread's state letter to the counts (`I`, idle kernel threads, and `Z`/`X` count
/// nowhere, as taskstats leaves them out).
pub fn count_state(counts: &mut TaskCounts, state: char) {
    match state {
        'R' => counts.nr_running += 1,
        'S' => counts.nr_sleeping += 1,
        'D' => counts.nr_uninterruptible += 1,
        'T' | 't' => counts.nr_stopped += 1,
        _ => {}
    }
}

/// The thread ids listed in a cgroup thread file (one number a line; garbage lines skipped).
pub fn parse_tids(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Counts the states of the threads in `cgroup_dir` and returns the D-state ones.
pub fn scan_cgroup(
    procfs_root: &Path,
    cgroup_dir: &Path,
) -> Result<(TaskCounts, Vec<DTask>), String> {
    let list = ["cgroup.threads", "tasks"]
        .iter()
        .map(|f| cgroup_dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| format!("{}: no cgroup.threads or tasks file", cgroup_dir.display()))?;
    let text = std::fs::read_to_string(&list).map_err(|e| format!("{}: {e}", list.display()))?;
    let mut counts = TaskCounts::default();
    let mut blocked = Vec::new();
    for tid in parse_tids(&text) {
        // A thread that exits between the list and its stat is skipped.
        let Some((_, state)) = std::fs::read_to_string(procfs_root.join(format!("{tid}/stat")))
            .ok()
            .and_then(|t| parse_stat(&t))
        else {
            continue;
        };
        count_state(&mut counts, state);
        if state == 'D' {
            if is_iowait(procfs_root, tid) {
                counts.nr_iowait += 1;
            }
            blocked.push(DTask { tid });
        }
    }
    Ok((counts, blocked))
}

fn is_iowait(procfs_root: &Path, tid: u32) -> bool {
    std::fs::read_to_string(procfs_root.join(format!("{tid}/wchan")))
        .map(|w| w.starts_with("io_schedule"))
        .unwrap_or(false)
}
