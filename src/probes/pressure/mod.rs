//! pressure (beyond upstream): PSI stall information for the host (`/proc/pressure/{cpu,memory,io}`)
//! and for each container (cgroup v2 `{cpu,memory,io}.pressure`) →
//! `huatuo_bamai_pressure[_container]_<resource>_<some|full>_{avg10,seconds_total}`.

use std::path::{Path, PathBuf};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::{CgroupLayout, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::file;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "pressure";

/// PSI resources, in export order.
pub const RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// PSI stall info: host /proc/pressure/{cpu,memory,io} and containers' cgroup v2 *.pressure (pressure_*);
/// inactive on kernels without PSI.
pub struct PressureConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(PressureConfig, "pressure");

/// Whether a PSI line counts time when some or all non-idle tasks stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    Some,
    Full,
}

impl Stall {
    pub fn as_str(self) -> &'static str {
        match self {
            Stall::Some => "some",
            Stall::Full => "full",
        }
    }
}

/// One line of a PSI file: `some avg10=0.62 avg60=1.91 avg300=5.13 total=176740478`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    pub stall: Stall,
    /// Share of wall time stalled over the last 10 s, as a ratio (the file's percent / 100).
    pub avg10: f64,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// Parses a PSI file (`/proc/pressure/<res>` or a cgroup v2 `<res>.pressure`). Kernels before
/// 5.13 have no `full` line in cpu files; whatever lines are present are returned.
pub fn parse_psi(text: &str) -> Result<Vec<PsiLine>, String> {
    let mut lines = Vec::with_capacity(2);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let stall = match fields.next() {
            Some("some") => Stall::Some,
            Some("full") => Stall::Full,
            Some(other) => return Err(format!("line starts with `{other}`, not some/full")),
            None => continue,
        };
        let (mut avg10, mut total_us) = (None, None);
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!(
                    "{} line: `{field}` is not key=value",
                    stall.as_str()
                ));
            };
            match key {
                "avg10" => {
                    avg10 = Some(parse_percent(value).ok_or_else(|| {
                        format!(
                            "{} line: avg10 `{value}` is not a percentage",
                            stall.as_str()
                        )
                    })?)
                }
                "total" => {
                    total_us = Some(value.parse::<u64>().map_err(|_| {
                        format!("{} line: total `{value}` is not a number", stall.as_str())
                    })?)
                }
                _ => {}
            }
        }
        let missing = |what: &str| format!("{} line: no {what}", stall.as_str());
        lines.push(PsiLine {
            stall,
            avg10: avg10.ok_or_else(|| missing("avg10"))?,
            total_us: total_us.ok_or_else(|| missing("total"))?,
        });
    }
    if lines.is_empty() {
        return Err("no some/full line".to_string());
    }
    Ok(lines)
}

/// A `0.00`–`100.00` percentage as a ratio. The kernel prints two decimals; reading them as
/// hundredths keeps the ratio exact (12.34 → 0.1234, not 0.12340000000000001).
fn parse_percent(text: &str) -> Option<f64> {
    let exact = text.split_once('.').and_then(|(whole, frac)| {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) || frac.len() > 2 {
            return None;
        }
        let scale = if frac.len() == 1 { 10 } else { 1 };
        let hundredths = whole
            .parse::<u64>()
            .ok()?
            .checked_mul(100)?
            .checked_add(frac.parse::<u64>().ok()? * scale)?;
        Some(hundredths as f64 / 10_000.0)
    });
    let ratio = match exact {
        Some(ratio) => ratio,
        None => text.parse::<f64>().ok()? / 100.0,
    };
    (ratio.is_finite() && (0.0..=1.0).contains(&ratio)).then_some(ratio)
}

/// Directory holding a container's `*.pressure` files: its cgroup v2 directory, which on a
/// hybrid host is below the unified mount (`<sysfs>/fs/cgroup/unified<cgroup_path>`). `None` on
/// v1-only hosts.
pub fn container_psi_dir(layout: &CgroupLayout, cgroup_path: &str) -> Option<PathBuf> {
    match layout {
        CgroupLayout::V2 { .. } => Some(layout.dir("cpu", cgroup_path)),
        CgroupLayout::V1 {
            unified: Some(unified),
            ..
        } => Some(unified.join(cgroup_path.trim_start_matches('/'))),
        CgroupLayout::V1 { unified: None, .. } => None,
    }
}

/// The parsed PSI files of one source (host or one container), in [`RESOURCES`] order.
type Readings = Vec<(&'static str, Vec<PsiLine>)>;

pub struct PressureProbe {
    ctx: ProbeContext,
    host_dir: PathBuf,
    warned: WarnOnce,
}

impl PressureProbe {
    /// Reads the three files of `dir` (named by `file_name(resource)`); a missing or malformed
    /// file is logged once and skipped.
    fn read_dir(&mut self, dir: &Path, file_name: fn(&str) -> String) -> Readings {
        let mut readings = Vec::with_capacity(RESOURCES.len());
        for resource in RESOURCES {
            let path = dir.join(file_name(resource));
            match file::read_parsed(NAME, &path, parse_psi) {
                Ok(lines) => readings.push((resource, lines)),
                // The container went away between the directory check and the read.
                Err(_) if !dir.is_dir() => return Vec::new(),
                Err(error) => self.warned.warn_error(&error),
            }
        }
        readings
    }
}

impl Probe for PressureProbe {
    const NAME: &'static str = NAME;
    type Settings = PressureConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let host_dir = ctx.procfs("pressure");
        // The kernel creates /proc/pressure only with CONFIG_PSI and without psi=0.
        if !host_dir.is_dir() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!(
                    "{} is absent (kernel without CONFIG_PSI or booted with psi=0)",
                    host_dir.display()
                ),
            });
        }
        Ok(Self {
            ctx: ctx.clone(),
            host_dir,
            warned: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let host_dir = self.host_dir.clone();
        let host = self.read_dir(&host_dir, |r| r.to_string());

        let containers = self.ctx.containers.borrow().clone();
        let mut container_rows: Vec<(Labels, Readings)> = Vec::new();
        for container in containers.for_metrics(MetricScope::Normal) {
            let Some(dir) = container_psi_dir(&self.ctx.cgroup, &container.cgroup_path) else {
                break;
            };
            // Not in the v2 hierarchy (hybrid host) or already removed: nothing to read.
            if !dir.is_dir() {
                continue;
            }
            let readings = self.read_dir(&dir, |r| format!("{r}.pressure"));
            if !readings.is_empty() {
                container_rows.push((container.labels(), readings));
            }
        }

        self.warned.end_tick();

        if host.is_empty() && container_rows.is_empty() {
            return Err(file::malformed(
                NAME,
                &host_dir,
                "no readable PSI file (host or container)".to_string(),
            ));
        }

        let host_rows = [(Vec::new(), host)];
        emit(out, "", "/proc/pressure/{resource}", &host_rows);
        emit(
            out,
            "container_",
            "cgroup v2 {resource}.pressure",
            &container_rows,
        );
        Ok(())
    }
}

/// Pushes the avg10 and total series of each (resource, stall) found in `rows`; a family
/// appears only when some row has that line (cpu `full` is missing before Linux 5.13).
fn emit(out: &mut MetricSet, scope: &str, source: &str, rows: &[(Labels, Readings)]) {
    let whose = if scope.is_empty() {
        ""
    } else {
        " of the container"
    };
    for resource in RESOURCES {
        let source = source.replace("{resource}", resource);
        for stall in [Stall::Some, Stall::Full] {
            let s = stall.as_str();
            let found: Vec<(&Labels, PsiLine)> = rows
                .iter()
                .filter_map(|(labels, readings)| {
                    readings
                        .iter()
                        .filter(|(r, _)| *r == resource)
                        .flat_map(|(_, lines)| lines)
                        .find(|l| l.stall == stall)
                        .map(|l| (labels, *l))
                })
                .collect();
            if found.is_empty() {
                continue;
            }
            let who = match stall {
                Stall::Some => "some",
                Stall::Full => "all non-idle",
            };
            let avg10 = out.gauge(
                &format!("huatuo_bamai_pressure_{scope}{resource}_{s}_avg10"),
                &format!(
                    "Share of the last 10 s in which {who} tasks{whose} stalled on {resource}, ratio 0-1 ({source} {s} avg10 / 100)."
                ),
            );
            for (labels, line) in &found {
                avg10.push((*labels).clone(), line.avg10);
            }
            let total = out.counter(
                &format!("huatuo_bamai_pressure_{scope}{resource}_{s}_seconds_total"),
                &format!(
                    "Seconds in which {who} tasks{whose} stalled on {resource} ({source} {s} total / 1e6)."
                ),
            );
            for (labels, line) in &found {
                total.push((*labels).clone(), line.total_us as f64 / 1e6);
            }
        }
    }
}

#[cfg(test)]
mod tests;
