//! cpu_util: host and container CPU utilisation, upstream's `cpu_util_{usr,sys,total}` (percent
//! of the online CPUs) and `cpu_util_container_{usr,sys,total}` (percent of the cores the
//! container may use, exported as `cpu_util_container_cores`). Utilisation is the CPU time
//! spent between two ticks, so the first tick exports only the cores.

pub mod cpu_files;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::{Container, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::file;
use crate::probes::common::keyed_file::parse_flat_keyed;
use crate::probes::common::warn_once::WarnOnce;
use cpu_files::{CpuUsage, ReadOnce};

const NAME: &str = "cpu_util";

const HOST_FAMILIES: [(&str, &str); 3] = [
    (
        "huatuo_bamai_cpu_util_usr",
        "Host CPU time in user mode over the last interval, percent of all online CPUs.",
    ),
    (
        "huatuo_bamai_cpu_util_sys",
        "Host CPU time in kernel mode (incl. irq and softirq) over the last interval, percent of all online CPUs.",
    ),
    (
        "huatuo_bamai_cpu_util_total",
        "Host CPU time over the last interval, percent of all online CPUs.",
    ),
];
const CONTAINER_CORES: (&str, &str) = (
    "huatuo_bamai_cpu_util_container_cores",
    "CPU cores the container may use: its CFS quota (all host CPUs without one), bounded by its cpuset and the host's online CPUs.",
);
const CONTAINER_FAMILIES: [(&str, &str); 3] = [
    (
        "huatuo_bamai_cpu_util_container_usr",
        "Container CPU time in user mode over the last interval, percent of huatuo_bamai_cpu_util_container_cores.",
    ),
    (
        "huatuo_bamai_cpu_util_container_sys",
        "Container CPU time in kernel mode over the last interval, percent of huatuo_bamai_cpu_util_container_cores.",
    ),
    (
        "huatuo_bamai_cpu_util_container_total",
        "Container CPU time over the last interval, percent of huatuo_bamai_cpu_util_container_cores.",
    ),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Host and container CPU utilisation in percent (cpu_util_*, cpu_util_container_*) and the
/// container's usable cores (cpu_util_container_cores) from cpuacct / cpu.stat / cpu.max / cpuset.
pub struct CpuUtilConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period, also the interval the utilisation is averaged over.
    pub interval_ms: u64,
}

impl Default for CpuUtilConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(CpuUtilConfig, "cpu_util");

/// Where the host's counters came from: a delta is only taken between samples of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostSource {
    /// Root cgroup: v1 `cpuacct.stat` + `cpuacct.usage`, v2 `cpu.stat`.
    RootCgroup,
    /// `/proc/stat` `cpu` line, when the root cgroup's files cannot be read.
    ProcStat,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    usage: CpuUsage,
    at: Instant,
}

impl Sample {
    /// Percent of `cores` used between `earlier` and `self` (user, system, total); `None` on a
    /// counter reset or when no time passed.
    fn percent_since(&self, earlier: &Sample, cores: f64) -> Option<[f64; 3]> {
        let delta = self.usage.since(&earlier.usage)?;
        let elapsed_ns = self.at.checked_duration_since(earlier.at)?.as_nanos() as f64;
        let capacity = cores * elapsed_ns;
        if capacity <= 0.0 {
            return None;
        }
        let percent = |ns: u64| ns as f64 * 100.0 / capacity;
        Some([
            percent(delta.user_ns),
            percent(delta.system_ns),
            percent(delta.total_ns),
        ])
    }
}

struct ContainerState {
    last: Option<Sample>,
    /// Tick that last saw the container; entries of gone containers are dropped.
    seen: u64,
}

pub struct CpuUtilProbe {
    ctx: ProbeContext,
    user_hz: u64,
    online_path: PathBuf,
    host_last: Option<(HostSource, Sample)>,
    containers: HashMap<String, ContainerState>,
    tick: u64,
    warned: WarnOnce,
}

impl Probe for CpuUtilProbe {
    const NAME: &'static str = NAME;
    type Settings = CpuUtilConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self::new(ctx.clone()))
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        self.collect_at(out, Instant::now())
    }
}

impl CpuUtilProbe {
    pub fn new(ctx: ProbeContext) -> Self {
        Self {
            online_path: ctx.sysfs_root.join("devices/system/cpu/online"),
            ctx,
            user_hz: cpu_files::user_hz(),
            host_last: None,
            containers: HashMap::new(),
            tick: 0,
            warned: WarnOnce::default(),
        }
    }

    /// One collection with `now` as the sample time (tests pass their own clock).
    pub fn collect_at(&mut self, out: &mut MetricSet, now: Instant) -> Result<(), ProbeError> {
        self.tick += 1;
        for (name, help) in HOST_FAMILIES {
            out.gauge(name, help);
        }
        out.gauge(CONTAINER_CORES.0, CONTAINER_CORES.1);
        for (name, help) in CONTAINER_FAMILIES {
            out.gauge(name, help);
        }

        let mut proc_stat = ReadOnce::new(self.ctx.procfs("stat"));
        let host_cpus = self.online_cpus(&mut proc_stat);
        let host = self.collect_host(out, now, host_cpus, &mut proc_stat);

        // Clone the Arc so discovery is never blocked on our file reads.
        let containers = self.ctx.containers.borrow().clone();
        let mut collected = 0;
        for container in containers.for_metrics(MetricScope::NormalAndSidecar) {
            match self.collect_container(out, container, now, host_cpus) {
                Ok(()) => collected += 1,
                Err(e) => self.warned.warn(&container.id, &e),
            }
        }
        let tick = self.tick;
        self.containers.retain(|_, state| state.seen == tick);

        self.warned.end_tick_with_host(host, collected)
    }

    /// Online CPUs from `<sysfs>/devices/system/cpu/online`, else the `cpuN` lines of
    /// `/proc/stat`.
    fn online_cpus(&mut self, proc_stat: &mut ReadOnce) -> Option<u32> {
        match file::read_optional(NAME, &self.online_path) {
            Ok(Some(text)) => match cpu_files::parse_cpu_list_count(&text) {
                Ok(Some(n)) => return Some(n),
                Ok(None) => self.warned.warn(
                    "online",
                    &file::malformed(NAME, &self.online_path, "empty CPU list".into()),
                ),
                Err(reason) => self
                    .warned
                    .warn("online", &file::malformed(NAME, &self.online_path, reason)),
            },
            Ok(None) => {}
            Err(e) => self.warned.warn("online", &e),
        }
        let counted = proc_stat.get(NAME).and_then(|text| {
            cpu_files::parse_proc_stat(text, self.user_hz)
                .map(|(_, cpus)| cpus)
                .map_err(|reason| file::malformed(NAME, &self.ctx.procfs("stat"), reason))
        });
        match counted {
            Ok(n) if n > 0 => Some(n),
            Ok(_) => {
                let e = file::malformed(NAME, &self.ctx.procfs("stat"), "no cpuN line".into());
                self.warned.warn("cpus", &e);
                None
            }
            Err(e) => {
                self.warned.warn("cpus", &e);
                None
            }
        }
    }

    fn collect_host(
        &mut self,
        out: &mut MetricSet,
        now: Instant,
        host_cpus: Option<u32>,
        proc_stat: &mut ReadOnce,
    ) -> Result<(), ProbeError> {
        let (source, usage) = match self.cgroup_usage("/") {
            Ok(usage) => (HostSource::RootCgroup, usage),
            Err(e) => {
                self.warned.warn(
                    "host-cgroup",
                    &format!("{e}; host utilisation falls back to /proc/stat"),
                );
                let text = proc_stat.get(NAME)?;
                let (usage, _) = cpu_files::parse_proc_stat(text, self.user_hz)
                    .map_err(|reason| file::malformed(NAME, &self.ctx.procfs("stat"), reason))?;
                (HostSource::ProcStat, usage)
            }
        };
        let sample = Sample { usage, at: now };
        let previous = self.host_last.replace((source, sample));
        let Some(cpus) = host_cpus else {
            return Err(file::malformed(
                NAME,
                &self.online_path,
                "the number of online CPUs is unknown".into(),
            ));
        };
        if let Some((prev_source, prev)) = previous {
            if prev_source == source {
                if let Some(percent) = sample.percent_since(&prev, f64::from(cpus)) {
                    for ((name, help), value) in HOST_FAMILIES.iter().zip(percent) {
                        out.gauge(name, help).push(vec![], value);
                    }
                }
            }
        }
        Ok(())
    }

    fn collect_container(
        &mut self,
        out: &mut MetricSet,
        container: &Container,
        now: Instant,
        host_cpus: Option<u32>,
    ) -> Result<(), ProbeError> {
        let rel = container.cgroup_path.as_str();
        let state = self
            .containers
            .entry(container.id.clone())
            .or_insert(ContainerState {
                last: None,
                seen: 0,
            });
        state.seen = self.tick;

        let quota = match self.container_quota(rel) {
            Ok(quota) => quota,
            Err(e) if self.container_gone(rel, &e) => return Ok(()),
            Err(e) => return Err(e),
        };
        let cpuset = self.container_cpuset(rel);
        let Some(cores) = cpu_files::container_cores(quota, cpuset, host_cpus) else {
            return Err(file::malformed(
                NAME,
                &self.ctx.cgroup.dir("cpu", rel),
                "no quota, no cpuset and no host CPU count to bound the container's cores".into(),
            ));
        };
        let labels: Labels = container.labels();
        out.gauge(CONTAINER_CORES.0, CONTAINER_CORES.1)
            .push(labels.clone(), cores);

        let usage = match self.cgroup_usage(rel) {
            Ok(usage) => usage,
            Err(e) if self.container_gone(rel, &e) => return Ok(()),
            Err(e) => {
                // Cores are still exported; utilisation resumes once the file reads again.
                self.warned.warn(&format!("{}/usage", container.id), &e);
                return Ok(());
            }
        };
        let sample = Sample { usage, at: now };
        let Some(state) = self.containers.get_mut(&container.id) else {
            return Ok(());
        };
        if let Some(percent) = state
            .last
            .replace(sample)
            .and_then(|prev| sample.percent_since(&prev, cores))
        {
            for ((name, help), value) in CONTAINER_FAMILIES.iter().zip(percent) {
                out.gauge(name, help).push(labels.clone(), value);
            }
        }
        Ok(())
    }

    /// A container that stopped since discovery last ran: its files vanish with its cgroup.
    fn container_gone(&self, rel: &str, error: &ProbeError) -> bool {
        file::is_not_found(error) && !self.ctx.cgroup.dir("cpu", rel).exists()
    }

    /// Cumulative CPU time of the cgroup at `rel` (`/` = root).
    fn cgroup_usage(&self, rel: &str) -> Result<CpuUsage, ProbeError> {
        if self.ctx.cgroup.is_v2() {
            let path = self.ctx.cgroup.dir("cpu", rel).join("cpu.stat");
            file::read_parsed(NAME, &path, |text| {
                parse_flat_keyed(text).and_then(|pairs| cpu_files::parse_cpu_stat_usage(&pairs))
            })
        } else {
            let dir = self.ctx.cgroup.dir("cpuacct", rel);
            let stat = file::read(NAME, &dir.join("cpuacct.stat"))?;
            let usage = file::read(NAME, &dir.join("cpuacct.usage"))?;
            cpu_files::parse_cpuacct(&stat, &usage, self.user_hz)
                .map_err(|reason| file::malformed(NAME, &dir, reason))
        }
    }

    /// Quota in cores (`None` = unlimited): v2 `cpu.max` (absent when the cpu controller is
    /// not enabled for the cgroup, i.e. unlimited), v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
    fn container_quota(&self, rel: &str) -> Result<Option<f64>, ProbeError> {
        let dir = self.ctx.cgroup.dir("cpu", rel);
        if self.ctx.cgroup.is_v2() {
            let path = dir.join("cpu.max");
            match file::read_optional(NAME, &path)? {
                Some(text) => cpu_files::parse_cpu_max(&text)
                    .map_err(|reason| file::malformed(NAME, &path, reason)),
                None if dir.exists() => Ok(None),
                None => Err(ProbeError::Read {
                    probe: NAME,
                    path: path.display().to_string(),
                    source: std::io::ErrorKind::NotFound.into(),
                }),
            }
        } else {
            let quota = file::read(NAME, &dir.join("cpu.cfs_quota_us"))?;
            let period = file::read(NAME, &dir.join("cpu.cfs_period_us"))?;
            cpu_files::parse_cfs_quota(&quota, &period)
                .map_err(|reason| file::malformed(NAME, &dir, reason))
        }
    }

    /// CPUs in the container's cpuset (v1 `cpuset.cpus`, v2 `cpuset.cpus.effective`), when the
    /// cpuset controller covers it.
    fn container_cpuset(&mut self, rel: &str) -> Option<u32> {
        let path = if self.ctx.cgroup.is_v2() {
            self.ctx
                .cgroup
                .dir("cpuset", rel)
                .join("cpuset.cpus.effective")
        } else {
            self.ctx.cgroup.dir("cpuset", rel).join("cpuset.cpus")
        };
        let key = path.display().to_string();
        match file::read_optional(NAME, &path) {
            Ok(None) => None,
            Ok(Some(text)) => match cpu_files::parse_cpu_list_count(&text) {
                Ok(count) => count,
                Err(reason) => {
                    self.warned
                        .warn(&key, &file::malformed(NAME, &path, reason));
                    None
                }
            },
            Err(e) => {
                self.warned.warn(&key, &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
