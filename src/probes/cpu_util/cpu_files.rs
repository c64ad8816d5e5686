//! Parsers of the CPU accounting files shared by `cpu_util` and `cpu_stat`: cgroup `cpu.stat` /
//! `cpuacct.*` / `cpu.max` / `cpu.cfs_*` / `cpuset.*`, `/proc/stat` and the sysfs CPU list.

use std::path::PathBuf;

use crate::core::probe::ProbeError;
use crate::probes::common::keyed_file::{field, parse_flat_keyed, require};

/// A duration in ns from `ns_key` (cgroup v1), else `usec_key` × 1000 (cgroup v2).
pub fn duration_ns(pairs: &[(&str, u64)], ns_key: &str, usec_key: &str) -> Option<u64> {
    field(pairs, ns_key).or_else(|| field(pairs, usec_key).and_then(|us| us.checked_mul(1000)))
}

/// One unsigned integer (`cpuacct.usage`, `cpu.cfs_period_us`).
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let raw = text.trim();
    raw.parse()
        .map_err(|_| format!("`{raw}` is not an unsigned integer"))
}

/// Number of CPUs in a kernel CPU list (`0-3,8,10-11`); `None` for an empty list.
pub fn parse_cpu_list_count(text: &str) -> Result<Option<u32>, String> {
    let ranges = parse_cpu_list(text)?;
    if ranges.is_empty() {
        return Ok(None);
    }
    Ok(Some(ranges.iter().fold(0u32, |count, r| {
        count.saturating_add(r.end() - r.start() + 1)
    })))
}

/// The CPU ranges of a kernel CPU list (`0-3,8,10-11`, as in
/// `/sys/devices/system/cpu/online`); empty for an empty list.
pub fn parse_cpu_list(text: &str) -> Result<Vec<std::ops::RangeInclusive<u32>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| {
            let bad = || format!("`{part}` is not a CPU or CPU range");
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (
                    a.parse::<u32>().map_err(|_| bad())?,
                    b.parse::<u32>().map_err(|_| bad())?,
                ),
                None => {
                    let cpu = part.parse::<u32>().map_err(|_| bad())?;
                    (cpu, cpu)
                }
            };
            if last < first {
                return Err(bad());
            }
            Ok(first..=last)
        })
        .collect()
}

/// CPU quota in cores from cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; `None` = no
/// quota (`-1`).
pub fn parse_cfs_quota(quota: &str, period: &str) -> Result<Option<f64>, String> {
    let raw = quota.trim();
    let quota: i64 = raw
        .parse()
        .map_err(|_| format!("cpu.cfs_quota_us `{raw}` is not an integer"))?;
    if quota == -1 {
        return Ok(None);
    }
    let period = parse_u64(period).map_err(|e| format!("cpu.cfs_period_us {e}"))?;
    if quota <= 0 || period == 0 {
        return Err(format!(
            "quota {quota} / period {period} is not a positive CPU limit"
        ));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// CPU quota in cores from cgroup v2 `cpu.max` (`$MAX $PERIOD`, `max` = no quota).
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut fields = text.split_whitespace();
    let (Some(max), Some(period)) = (fields.next(), fields.next()) else {
        return Err(format!("`{}` is not `$MAX $PERIOD`", text.trim()));
    };
    if max == "max" {
        return Ok(None);
    }
    let bad = || format!("`{}` is not `$MAX $PERIOD`", text.trim());
    let max: u64 = max.parse().map_err(|_| bad())?;
    let period: u64 = period.parse().map_err(|_| bad())?;
    if max == 0 || period == 0 {
        return Err(bad());
    }
    Ok(Some(max as f64 / period as f64))
}

/// Cores a container may use: its quota (or every host CPU without one), bounded by its cpuset
/// and by the host's online CPUs. `None` when nothing bounds it (no host CPU count known).
pub fn container_cores(
    quota_cores: Option<f64>,
    cpuset_cpus: Option<u32>,
    host_cpus: Option<u32>,
) -> Option<f64> {
    let bounds = [cpuset_cpus, host_cpus]
        .into_iter()
        .flatten()
        .map(f64::from);
    let cores = match quota_cores {
        Some(quota) => bounds.fold(quota, f64::min),
        None => bounds.reduce(f64::min)?,
    };
    (cores.is_finite() && cores > 0.0).then_some(cores)
}

/// Cumulative CPU time of a cgroup (or of the host), in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuUsage {
    pub user_ns: u64,
    pub system_ns: u64,
    pub total_ns: u64,
}

impl CpuUsage {
    /// Time spent since `earlier`; `None` if any counter went backwards (cgroup recreated).
    pub fn since(&self, earlier: &CpuUsage) -> Option<CpuUsage> {
        Some(CpuUsage {
            user_ns: self.user_ns.checked_sub(earlier.user_ns)?,
            system_ns: self.system_ns.checked_sub(earlier.system_ns)?,
            total_ns: self.total_ns.checked_sub(earlier.total_ns)?,
        })
    }
}

/// USER_HZ, the unit of `cpuacct.stat` and `/proc/stat`.
pub fn user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

pub fn ticks_to_ns(ticks: u64, user_hz: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(user_hz.max(1))).min(u128::from(u64::MAX))
        as u64
}

/// cgroup v1 `cpuacct.stat` (user/system in USER_HZ ticks) and `cpuacct.usage` (ns).
pub fn parse_cpuacct(stat: &str, usage: &str, user_hz: u64) -> Result<CpuUsage, String> {
    let pairs = parse_flat_keyed(stat).map_err(|e| format!("cpuacct.stat: {e}"))?;
    let user = require(&pairs, "user").map_err(|e| format!("cpuacct.stat: {e}"))?;
    let system = require(&pairs, "system").map_err(|e| format!("cpuacct.stat: {e}"))?;
    let total = parse_u64(usage).map_err(|e| format!("cpuacct.usage: {e}"))?;
    Ok(CpuUsage {
        user_ns: ticks_to_ns(user, user_hz),
        system_ns: ticks_to_ns(system, user_hz),
        total_ns: total,
    })
}

/// cgroup v2 `cpu.stat` (`usage_usec`, `user_usec`, `system_usec`).
pub fn parse_cpu_stat_usage(pairs: &[(&str, u64)]) -> Result<CpuUsage, String> {
    let usec = |key| require(pairs, key).map(|v| v.saturating_mul(1000));
    Ok(CpuUsage {
        user_ns: usec("user_usec")?,
        system_ns: usec("system_usec")?,
        total_ns: usec("usage_usec")?,
    })
}

/// Host CPU time from the `cpu` line of `/proc/stat`, split as the kernel does for the cgroup v2
/// root `cpu.stat`: user = user + nice, system = system + irq + softirq, total = user + system.
/// Also returns the number of `cpuN` lines (online CPUs).
pub fn parse_proc_stat(text: &str, user_hz: u64) -> Result<(CpuUsage, u32), String> {
    let mut usage = None;
    let mut cpus: u32 = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            cpus += 1;
            continue;
        }
        if !rest.starts_with(' ') {
            continue;
        }
        let values: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("cpu line `{line}` has a non-numeric field"))?;
        // user nice system idle iowait irq softirq
        if values.len() < 7 {
            return Err(format!(
                "cpu line has {} fields, expected at least 7",
                values.len()
            ));
        }
        let user = values[0].saturating_add(values[1]);
        let system = values[2]
            .saturating_add(values[5])
            .saturating_add(values[6]);
        usage = Some(CpuUsage {
            user_ns: ticks_to_ns(user, user_hz),
            system_ns: ticks_to_ns(system, user_hz),
            total_ns: ticks_to_ns(user.saturating_add(system), user_hz),
        });
    }
    let usage = usage.ok_or_else(|| "no `cpu` line".to_string())?;
    Ok((usage, cpus))
}

/// A file read at most once per tick, on first use.
pub struct ReadOnce {
    path: PathBuf,
    text: Option<std::io::Result<String>>,
}

impl ReadOnce {
    pub fn new(path: PathBuf) -> Self {
        Self { path, text: None }
    }

    /// The file's text (read on the first call).
    pub fn get(&mut self, probe: &'static str) -> Result<&str, ProbeError> {
        let path = &self.path;
        match self
            .text
            .get_or_insert_with(|| std::fs::read_to_string(path))
        {
            Ok(text) => Ok(text.as_str()),
            Err(e) => Err(ProbeError::Read {
                probe,
                path: self.path.display().to_string(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            }),
        }
    }
}
