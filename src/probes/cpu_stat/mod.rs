//! cpu_stat: container CFS bandwidth statistics from the container's `cpu.stat`, upstream's
//! `cpu_stat_container_{nr_throttled,throttled_time,nr_bursts,burst_time}` and, where the kernel
//! exposes `wait_sum` (cgroup v1 with `kernel.sched_schedstats=1`),
//! `cpu_stat_container_wait_sum_percent`.

use std::collections::HashMap;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::{Container, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::keyed_file::{field, parse_flat_keyed};
use crate::probes::common::warn_once::WarnOnce;
use crate::probes::cpu_util::cpu_files;

const NAME: &str = "cpu_stat";

const NR_THROTTLED: (&str, &str) = (
    "huatuo_bamai_cpu_stat_container_nr_throttled",
    "Periods in which the container was throttled by its CFS quota (cpu.stat nr_throttled, cumulative).",
);
const THROTTLED_TIME: (&str, &str) = (
    "huatuo_bamai_cpu_stat_container_throttled_time",
    "Time the container was throttled, ns (cpu.stat throttled_time, or throttled_usec x 1000 on cgroup v2; cumulative).",
);
const NR_BURSTS: (&str, &str) = (
    "huatuo_bamai_cpu_stat_container_nr_bursts",
    "Periods in which the container used CFS burst (cpu.stat nr_bursts, cumulative).",
);
const BURST_TIME: (&str, &str) = (
    "huatuo_bamai_cpu_stat_container_burst_time",
    "Time the container ran beyond its quota on burst, ns (cpu.stat burst_time, or burst_usec x 1000 on cgroup v2; cumulative).",
);
const WAIT_SUM_PERCENT: (&str, &str) = (
    "huatuo_bamai_cpu_stat_container_wait_sum_percent",
    "Share of the container's runnable time spent waiting on a run queue over the last interval, percent: d(wait_sum) / (d(wait_sum) + d(cpu usage)) (needs kernel.sched_schedstats=1, cgroup v1).",
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Container CFS throttling and burst from cpu.stat, and the run-queue wait share where the
/// kernel exposes wait_sum (cgroup v1 with kernel.sched_schedstats=1) (cpu_stat_container_*).
pub struct CpuStatConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period, also the interval wait_sum_percent is computed over.
    pub interval_ms: u64,
}

impl Default for CpuStatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(CpuStatConfig, "cpu_stat");

/// The fields of one container's `cpu.stat` this probe exports (absent ones stay `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub nr_throttled: Option<u64>,
    pub throttled_ns: Option<u64>,
    pub nr_bursts: Option<u64>,
    pub burst_ns: Option<u64>,
    /// Run-queue wait of the container's tasks, ns (schedstats, cgroup v1 only).
    pub wait_sum_ns: Option<u64>,
    /// CPU usage, ns, when `cpu.stat` itself carries it (cgroup v2 `usage_usec`).
    pub usage_ns: Option<u64>,
}

/// Parses a v1 or v2 `cpu.stat`.
pub fn parse_cpu_stat(text: &str) -> Result<CpuStat, String> {
    let pairs = parse_flat_keyed(text)?;
    Ok(CpuStat {
        nr_throttled: field(&pairs, "nr_throttled"),
        throttled_ns: cpu_files::duration_ns(&pairs, "throttled_time", "throttled_usec"),
        nr_bursts: field(&pairs, "nr_bursts"),
        burst_ns: cpu_files::duration_ns(&pairs, "burst_time", "burst_usec"),
        wait_sum_ns: field(&pairs, "wait_sum"),
        usage_ns: field(&pairs, "usage_usec").and_then(|us| us.checked_mul(1000)),
    })
}

/// Percent of runnable time spent waiting between two `(wait_sum, usage)` samples (ns); `None`
/// on a counter reset. No activity at all is 0, as upstream.
pub fn wait_percent(current: (u64, u64), previous: (u64, u64)) -> Option<f64> {
    let wait = current.0.checked_sub(previous.0)?;
    let usage = current.1.checked_sub(previous.1)?;
    if wait == 0 && usage == 0 {
        return Some(0.0);
    }
    Some(wait as f64 * 100.0 / (wait as f64 + usage as f64))
}

struct WaitState {
    /// `(wait_sum, usage)` in ns at the previous tick.
    last: Option<(u64, u64)>,
    /// Tick that last saw the container; entries of gone containers are dropped.
    seen: u64,
}

pub struct CpuStatProbe {
    ctx: ProbeContext,
    waits: HashMap<String, WaitState>,
    tick: u64,
    warned: WarnOnce,
}

impl Probe for CpuStatProbe {
    const NAME: &'static str = NAME;
    type Settings = CpuStatConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self::new(ctx.clone()))
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        self.tick += 1;
        for (name, help) in [
            NR_THROTTLED,
            THROTTLED_TIME,
            NR_BURSTS,
            BURST_TIME,
            WAIT_SUM_PERCENT,
        ] {
            out.gauge(name, help);
        }
        // Clone the Arc so discovery is never blocked on our file reads.
        let containers = self.ctx.containers.borrow().clone();
        let mut first_error = None;
        let mut collected = 0;
        for container in containers.for_metrics(MetricScope::NormalAndSidecar) {
            match self.collect_container(out, container) {
                Ok(()) => collected += 1,
                Err(e) => {
                    self.warned.warn(&container.id, &e);
                    first_error.get_or_insert(e);
                }
            }
        }
        let tick = self.tick;
        self.waits.retain(|_, state| state.seen == tick);
        self.warned.end_tick();
        match first_error {
            Some(e) if collected == 0 => Err(e),
            _ => Ok(()),
        }
    }
}

impl CpuStatProbe {
    pub fn new(ctx: ProbeContext) -> Self {
        Self {
            ctx,
            waits: HashMap::new(),
            tick: 0,
            warned: WarnOnce::default(),
        }
    }

    fn collect_container(
        &mut self,
        out: &mut MetricSet,
        container: &Container,
    ) -> Result<(), ProbeError> {
        let dir = self.ctx.cgroup.dir("cpu", &container.cgroup_path);
        let stat = match file::read_parsed(NAME, &dir.join("cpu.stat"), parse_cpu_stat) {
            Ok(stat) => stat,
            // The container stopped since discovery last ran.
            Err(e) if file::is_not_found(&e) && !dir.exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        let labels = container.labels();
        for ((name, help), value) in [
            (NR_THROTTLED, stat.nr_throttled),
            (THROTTLED_TIME, stat.throttled_ns),
            (NR_BURSTS, stat.nr_bursts),
            (BURST_TIME, stat.burst_ns),
        ] {
            if let Some(value) = value {
                out.gauge(name, help).push(labels.clone(), value as f64);
            }
        }

        let Some(wait_sum) = stat.wait_sum_ns else {
            return Ok(());
        };
        let usage = match stat.usage_ns {
            Some(usage) => usage,
            None => {
                let usage_path = self
                    .ctx
                    .cgroup
                    .dir("cpuacct", &container.cgroup_path)
                    .join("cpuacct.usage");
                let usage = file::read_parsed(NAME, &usage_path, cpu_files::parse_u64);
                match usage {
                    Ok(usage) => usage,
                    Err(e) => {
                        // The throttling gauges are out; only the wait share is skipped.
                        self.warned.warn(&usage_path.display().to_string(), &e);
                        return Ok(());
                    }
                }
            }
        };
        let state = self.waits.entry(container.id.clone()).or_insert(WaitState {
            last: None,
            seen: 0,
        });
        state.seen = self.tick;
        if let Some(percent) = state
            .last
            .replace((wait_sum, usage))
            .and_then(|previous| wait_percent((wait_sum, usage), previous))
        {
            out.gauge(WAIT_SUM_PERCENT.0, WAIT_SUM_PERCENT.1)
                .push(labels, percent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
