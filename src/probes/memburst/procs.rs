//! The top processes by RSS, read from procfs, each with the container it runs in.

use std::path::Path;

use serde::Serialize;

use crate::containers::ContainerSet;

/// One entry of upstream's `top_memory_usage` (`pid`, `process_name`, `memory_size` = RSS in
/// bytes), plus the container it belongs to (empty on the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessMemory {
    pub pid: u32,
    pub process_name: String,
    pub memory_size: u64,
    pub container_id: String,
    pub container_name: String,
    pub container_hostname: String,
}

/// Resident pages from `/proc/<pid>/statm` (its second field).
pub fn parse_statm_resident(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The cgroup path of a task from `/proc/<pid>/cgroup`: the memory controller's line on v1
/// (`N:memory:/path`), the unified line on v2 (`0::/path`).
pub fn cgroup_path_of(text: &str, v2: bool) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut it = line.splitn(3, ':');
        let (_, controllers, path) = (it.next()?, it.next()?, it.next()?);
        let wanted = if v2 {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "memory")
        };
        wanted.then_some(path)
    })
}

/// Whether a task in `task_path` is inside the container cgroup `container_path`.
pub fn path_within(task_path: &str, container_path: &str) -> bool {
    let task = task_path.trim_end_matches('/');
    let container = container_path.trim_end_matches('/');
    !container.is_empty()
        && (task == container
            || task
                .strip_prefix(container)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// The `n` processes with the largest RSS, largest first (kernel threads have none).
pub fn top_by_rss(
    procfs_root: &Path,
    n: usize,
    containers: &ContainerSet,
    v2: bool,
) -> Vec<ProcessMemory> {
    let page = page_size();
    let Ok(entries) = std::fs::read_dir(procfs_root) else {
        return Vec::new();
    };
    let mut all: Vec<(u32, u64)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            // A process that exits while we read is skipped.
            let statm = std::fs::read_to_string(procfs_root.join(format!("{pid}/statm"))).ok()?;
            let pages = parse_statm_resident(&statm)?;
            (pages > 0).then_some((pid, pages.saturating_mul(page)))
        })
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all.into_iter()
        .map(|(pid, bytes)| {
            let dir = procfs_root.join(pid.to_string());
            let process_name = std::fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_default();
            let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
            let container = cgroup_path_of(&cgroup, v2).and_then(|path| {
                containers
                    .iter()
                    .find(|c| path_within(path, &c.cgroup_path))
            });
            ProcessMemory {
                pid,
                process_name,
                memory_size: bytes,
                container_id: container.map(|c| c.id.clone()).unwrap_or_default(),
                container_name: container.map(|c| c.name.clone()).unwrap_or_default(),
                container_hostname: container.map(|c| c.hostname.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}
