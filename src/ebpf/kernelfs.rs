//! Mounts the pseudo filesystems BPF tooling needs (tracefs for classic tracepoints, bpffs for
//! pinning) when the host has not, as HUATUO users on minimal hosts expect the agent to do.

use std::path::Path;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelFsReport {
    /// Filesystems this call mounted (mount points).
    pub mounted: Vec<String>,
    /// Mounts that were missing and could not be made, with the reason.
    pub failed: Vec<String>,
}

const MOUNTS: [(&str, &str); 2] = [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")];

fn is_mounted(mount_point: &str, mountinfo: &str) -> bool {
    // Field 5 of /proc/self/mountinfo is the mount point.
    mountinfo
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(mount_point))
}

/// Mounts tracefs at /sys/kernel/tracing and bpffs at /sys/fs/bpf when absent. Failures are
/// reported, not fatal: probes that need them degrade to `inactive`.
pub fn ensure_kernel_filesystems() -> KernelFsReport {
    let mut report = KernelFsReport::default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for (fstype, target) in MOUNTS {
        if is_mounted(target, &mountinfo) {
            continue;
        }
        if !Path::new(target).is_dir() {
            report
                .failed
                .push(format!("{fstype} at {target}: mount point does not exist"));
            continue;
        }
        match nix::mount::mount(
            Some(fstype),
            target,
            Some(fstype),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        ) {
            Ok(()) => report.mounted.push(target.to_string()),
            Err(e) => report.failed.push(format!("{fstype} at {target}: {e}")),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::is_mounted;

    #[test]
    fn finds_mount_point_in_mountinfo() {
        let info = "36 25 0:12 / /sys/kernel/tracing rw,nosuid - tracefs tracefs rw\n\
                    37 25 0:13 / /sys/fs/bpfx rw - bpf bpf rw\n";
        assert!(is_mounted("/sys/kernel/tracing", info));
        assert!(!is_mounted("/sys/fs/bpf", info));
    }
}
