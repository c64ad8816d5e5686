//! Kernel stacks of D-state tasks, read from `/proc/<pid>/task/<tid>/stack` at capture time.

use std::path::Path;

use serde::Serialize;

/// A task in D state and its kernel stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedTask {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// Innermost frame first, `function+off/len` a line.
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_error: Option<String>,
}

/// One `function+off/len` frame per line (the `[<address>] ` column is dropped: it reads 0
/// unless kptr_restrict allows addresses).
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

/// The thread group of `tid` (`Tgid:` of its status).
fn tgid_of(procfs_root: &Path, tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(procfs_root.join(format!("{tid}/status"))).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads one D-state thread; `None` when it is gone or no longer in D state.
pub fn read_blocked(procfs_root: &Path, tid: u32) -> Option<BlockedTask> {
    let pid = tgid_of(procfs_root, tid)?;
    let dir = procfs_root.join(format!("{pid}/task/{tid}"));
    let (comm, state) = std::fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|t| super::tasks::parse_stat(&t))?;
    if state != 'D' {
        return None;
    }
    let path = dir.join("stack");
    let (stack, stack_error) = match std::fs::read_to_string(&path) {
        Ok(text) => (parse_stack(&text), None),
        Err(e) => (String::new(), Some(format!("{}: {e}", path.display()))),
    };
    Some(BlockedTask {
        pid,
        tid,
        comm,
        stack,
        stack_error,
    })
}

fn numeric_entries(dir: &Path) -> Vec<u32> {
    let mut ids: Vec<u32> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Every D-state thread of the host, at most `limit` (the second value counts them all).
pub fn host_blocked(procfs_root: &Path, limit: usize) -> (Vec<BlockedTask>, usize) {
    let mut listed = Vec::new();
    let mut total = 0;
    for pid in numeric_entries(procfs_root) {
        for tid in numeric_entries(&procfs_root.join(format!("{pid}/task"))) {
            let stat = procfs_root.join(format!("{pid}/task/{tid}/stat"));
            let Some((_, 'D')) = std::fs::read_to_string(stat)
                .ok()
                .and_then(|t| super::tasks::parse_stat(&t))
            else {
                continue;
            };
            total += 1;
            if listed.len() < limit {
                if let Some(task) = read_blocked(procfs_root, tid) {
                    listed.push(task);
                }
            }
        }
    }
    (listed, total)
}

/// Upstream's `stack` text: each task's header line and its frames, a blank line between tasks.
pub fn stack_text(tasks: &[BlockedTask]) -> String {
    tasks
        .iter()
        .map(|t| {
            format!(
                "{} pid={} tid={} state=D\n{}",
                t.comm, t.pid, t.tid, t.stack
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
