//! Run-time cost of programs and the switch for kernel-wide BPF statistics.

use std::time::Duration;

use super::BpfError;

/// Run-time cost of one program since it was loaded (needs bpf_stats enabled).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub run_count: u64,
    pub run_time: Duration,
}

/// Keeps kernel-wide BPF run-time statistics on while held (`kernel.bpf_stats_enabled` stays 0).
pub struct BpfStatsGuard {
    _fd: std::os::fd::OwnedFd,
}

impl BpfStatsGuard {
    pub fn enable() -> Result<Self, BpfError> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(|fd| Self { _fd: fd })
            .map_err(|e| BpfError::Stats(e.to_string()))
    }
}
