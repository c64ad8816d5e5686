//! loadavg: `/proc/loadavg` → `huatuo_bamai_loadavg_load1|load5|load15` (host gauges, upstream
//! names), and per container `huatuo_bamai_loadavg_container_nr_running|nr_uninterruptible`:
//! the processes of the container's `cgroup.procs` whose `/proc/<pid>/stat` state is `R` or `D`
//! (upstream asks taskstats netlink, which only cgroup v1 answers; this works on v1 and v2).

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::{Container, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "loadavg";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/loadavg -> huatuo_bamai_loadavg_load{1,5,15}; per container, the R and D
/// processes of its cgroup.procs (<procfs_root>/<pid>/stat) -> loadavg_container_nr_*.
pub struct LoadavgConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period; each tick reads one stat file per container process.
    pub interval_ms: u64,
}

impl Default for LoadavgConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(LoadavgConfig, "loadavg");

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAverage {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// Parses `/proc/loadavg` ("0.12 0.34 0.56 1/234 5678").
pub fn parse_loadavg(text: &str) -> Result<LoadAverage, String> {
    let mut fields = text.split_whitespace();
    let mut next = |name: &str| -> Result<f64, String> {
        let raw = fields
            .next()
            .ok_or_else(|| format!("missing {name} field"))?;
        let value: f64 = raw
            .parse()
            .map_err(|_| format!("{name} `{raw}` is not a number"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("{name} `{raw}` is out of range"));
        }
        Ok(value)
    };
    Ok(LoadAverage {
        load1: next("load1")?,
        load5: next("load5")?,
        load15: next("load15")?,
    })
}

const NR_RUNNING: (&str, &str) = (
    "huatuo_bamai_loadavg_container_nr_running",
    "Processes of the container that are running or runnable (state R in /proc/<pid>/stat).",
);
const NR_UNINTERRUPTIBLE: (&str, &str) = (
    "huatuo_bamai_loadavg_container_nr_uninterruptible",
    "Processes of the container in uninterruptible sleep (state D in /proc/<pid>/stat).",
);

/// Bytes of `/proc/<pid>/stat` read: enough to pass `pid (comm)` (comm is at most 64 bytes).
const STAT_PREFIX: usize = 256;

/// The scheduler state letter of a `/proc/<pid>/stat` line (or its first bytes): the first
/// field after the command name, which is in parentheses and may itself hold `)` or spaces.
pub fn parse_stat_state(line: &[u8]) -> Option<u8> {
    let close = line.iter().rposition(|&b| b == b')')?;
    line[close + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
}

/// Task states of one container's processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub running: u64,
    pub uninterruptible: u64,
}

impl TaskCounts {
    pub fn add(&mut self, state: u8) {
        match state {
            b'R' => self.running += 1,
            b'D' => self.uninterruptible += 1,
            _ => {}
        }
    }
}

/// Outcome of reading one pid's stat file.
enum PidStat {
    State(u8),
    /// The process exited between reading `cgroup.procs` and its stat file.
    Gone,
    Malformed,
}

/// Reads the start of `<proc>/<pid>/stat` into `buf`.
fn read_pid_state(path: &Path, buf: &mut [u8; STAT_PREFIX]) -> std::io::Result<PidStat> {
    let gone = |e: &std::io::Error| {
        e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if gone(&e) => return Ok(PidStat::Gone),
        Err(e) => return Err(e),
    };
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if gone(&e) => return Ok(PidStat::Gone),
            Err(e) => return Err(e),
        }
    }
    if len == 0 {
        return Ok(PidStat::Gone);
    }
    Ok(parse_stat_state(&buf[..len]).map_or(PidStat::Malformed, PidStat::State))
}

pub struct LoadavgProbe {
    path: PathBuf,
    ctx: ProbeContext,
    warned: WarnOnce,
}

impl Probe for LoadavgProbe {
    const NAME: &'static str = NAME;
    type Settings = LoadavgConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self {
            path: ctx.procfs("loadavg"),
            ctx: ctx.clone(),
            warned: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let host = self.collect_host(out);
        // Clone the Arc so discovery is never blocked on our file reads.
        let containers = self.ctx.containers.borrow().clone();
        let mut collected = 0;
        let mut buf = [0u8; STAT_PREFIX];
        for container in containers.for_metrics(MetricScope::NormalAndSidecar) {
            if let Some(counts) = self.container_counts(container, &mut buf) {
                let labels = container.labels();
                out.gauge(NR_RUNNING.0, NR_RUNNING.1)
                    .push(labels.clone(), counts.running as f64);
                out.gauge(NR_UNINTERRUPTIBLE.0, NR_UNINTERRUPTIBLE.1)
                    .push(labels, counts.uninterruptible as f64);
                collected += 1;
            }
        }
        self.warned.end_tick_with_host(host, collected)
    }
}

impl LoadavgProbe {
    fn collect_host(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let load = file::read_parsed(NAME, &self.path, parse_loadavg)?;
        out.gauge(
            "huatuo_bamai_loadavg_load1",
            "System load average over 1 minute (/proc/loadavg).",
        )
        .push(vec![], load.load1);
        out.gauge(
            "huatuo_bamai_loadavg_load5",
            "System load average over 5 minutes (/proc/loadavg).",
        )
        .push(vec![], load.load5);
        out.gauge(
            "huatuo_bamai_loadavg_load15",
            "System load average over 15 minutes (/proc/loadavg).",
        )
        .push(vec![], load.load15);
        Ok(())
    }

    /// R and D processes of the container; `None` when its `cgroup.procs` cannot be read.
    fn container_counts(
        &mut self,
        container: &Container,
        buf: &mut [u8; STAT_PREFIX],
    ) -> Option<TaskCounts> {
        let dir = self.ctx.cgroup.dir("cpu", &container.cgroup_path);
        let procs_path = dir.join("cgroup.procs");
        let procs = match file::read(NAME, &procs_path) {
            Ok(text) => text,
            // The container stopped since discovery last ran.
            Err(e) if file::is_not_found(&e) && !dir.exists() => return None,
            Err(e) => {
                self.warned.warn(&container.id, &e);
                return None;
            }
        };
        let mut counts = TaskCounts::default();
        let mut stat_path = self.ctx.procfs_root.clone();
        for line in procs.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line.parse::<u32>().is_err() {
                let e = file::malformed(NAME, &procs_path, format!("`{line}` is not a pid"));
                self.warned.warn(&container.id, &e);
                continue;
            }
            stat_path.push(line);
            stat_path.push("stat");
            match read_pid_state(&stat_path, buf) {
                Ok(PidStat::State(state)) => counts.add(state),
                Ok(PidStat::Gone) => {}
                Ok(PidStat::Malformed) => {
                    let e = file::malformed(NAME, &stat_path, "no `(comm) state`".into());
                    self.warned.warn(&container.id, &e);
                }
                Err(source) => {
                    let e = ProbeError::Read {
                        probe: NAME,
                        path: stat_path.display().to_string(),
                        source,
                    };
                    self.warned.warn(&container.id, &e);
                }
            }
            stat_path.pop();
            stat_path.pop();
        }
        Some(counts)
    }
}

#[cfg(test)]
mod tests;
