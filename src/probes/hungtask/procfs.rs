//! What a hungtask document reads from procfs at event time: the hung task's kernel stack, every
//! task in D state with its stack, and `hung_task_timeout_secs`.

use std::path::Path;

use serde::Serialize;

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

/// A task in D state and its kernel stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockedTask {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// Innermost frame first, `function+off/len` a line.
    pub stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_error: Option<String>,
}

/// `comm` and the one-letter state of a `/proc/<pid>/task/<tid>/stat` (the comm is everything
/// between the first `(` and the last `)`: it may hold spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<(String, char)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let state = text.get(close + 1..)?.trim_start().chars().next()?;
    Some((comm, state))
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

/// Every task in D state (uninterruptible sleep; `I`, the idle kernel threads khungtaskd skips,
/// is a different letter) with its kernel stack, by pid and tid; at most `limit` of them are
/// listed, the second value counts them all. Tasks that exit during the scan are left out.
pub fn blocked_tasks(procfs_root: &Path, limit: usize) -> (Vec<BlockedTask>, usize) {
    let mut listed = Vec::new();
    let mut total = 0;
    for pid in numeric_entries(procfs_root) {
        for tid in numeric_entries(&procfs_root.join(format!("{pid}/task"))) {
            let stat = procfs_root.join(format!("{pid}/task/{tid}/stat"));
            let Some((comm, 'D')) = std::fs::read_to_string(stat)
                .ok()
                .and_then(|text| parse_stat(&text))
            else {
                continue;
            };
            total += 1;
            if listed.len() >= limit {
                continue;
            }
            let (stack, stack_error) = match read_stack(procfs_root, pid, tid) {
                Ok(stack) => (stack, None),
                Err(e) => (String::new(), Some(e)),
            };
            listed.push(BlockedTask {
                pid,
                tid,
                comm,
                stack,
                stack_error,
            });
        }
    }
    (listed, total)
}

/// Upstream's `blocked_processes_stack` (the text sysrq `w` writes to the kernel log) built from
/// our per-task stacks without touching the kernel log: for each task a `task:<comm> state:D
/// pid:<tid> tgid:<pid>` line, `Call Trace:`, then one indented frame a line.
pub fn blocked_processes_text(tasks: &[BlockedTask]) -> String {
    let mut text = String::new();
    for task in tasks {
        text.push_str(&format!(
            "task:{} state:D pid:{} tgid:{}\nCall Trace:\n",
            task.comm, task.tid, task.pid
        ));
        match &task.stack_error {
            Some(error) => text.push_str(&format!(" <stack unreadable: {error}>\n")),
            None => {
                for frame in task.stack.lines() {
                    text.push_str(&format!(" {frame}\n"));
                }
            }
        }
    }
    text
}

/// `hung_task_timeout_secs` (0 when the administrator turned detection off).
pub fn read_timeout_secs(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
