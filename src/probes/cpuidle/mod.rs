//! cpuidle (AutoTracing, container): every `interval_ms` (10 s) read each normal container's
//! cgroup CPU time (v2 `cpu.stat`, v1 `cpuacct.stat`) and turn it into user / sys / total percent
//! of its capacity (its CFS quota in cores, the host's CPUs without one). Upstream's three rules
//! (user > 75 ∧ Δ > 45, sys > 45 ∧ Δ > 20, total > 90 ∧ Δ > 55) pick the highest-scoring
//! container, whose on-CPU stacks (that container only, filtered in the kernel by its cgroup) are
//! captured for `capture_secs` into an `autotracing` document (`tracer_name = "cpuidle"`).
//! Cooldown per container `cooldown_secs` (upstream 1800 s) and for all `global_cooldown_secs`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::autotracing::cpuidle::{
    cpu_list_count, decide, parse_cfs_quota, parse_cpu_max, parse_cpu_stat, parse_cpuacct_stat,
    pick, usage, CgroupCpu, Fire, Rule, Thresholds, Usage,
};
use crate::autotracing::Cooldown;
use crate::containers::{Container, MetricScope};
use crate::core::capture::CaptureTarget;
use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::time::go_time;
use crate::events::{EventDocument, TracerType};
use crate::exposition::MetricSet;
use crate::probes::common::autocapture::{on_cpu_request, CaptureRunner, FlameFields};
use crate::probes::common::file;

const NAME: &str = "cpuidle";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// AutoTracing cpuidle: a container whose user / sys / total CPU (percent of its quota) is high
/// and rose sharply → on-CPU flame graph of that container only (needs the profile probe).
pub struct CpuidleConfig {
    /// Turn the trigger on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Sampling period in ms (upstream: 10000); usage is measured over one period.
    pub interval_ms: u64,
    /// User-time rule: user% of the quota above this (upstream: 75) ...
    pub user_percent: f64,
    /// ... and rose by more than this since the previous sample (upstream: 45).
    pub user_percent_delta: f64,
    /// System-time rule: sys% above this (upstream: 45) ...
    pub system_percent: f64,
    /// ... and rose by more than this (upstream: 20).
    pub system_percent_delta: f64,
    /// Total rule: user + sys above this (upstream: 90) ...
    pub total_percent: f64,
    /// ... and rose by more than this (upstream: 55).
    pub total_percent_delta: f64,
    /// Length of the on-CPU capture in seconds (upstream: 10).
    pub capture_secs: u64,
    /// Quiet time per container after a capture, in seconds (upstream: 1800).
    pub cooldown_secs: u64,
    /// Quiet time for every container after any capture, in seconds.
    pub global_cooldown_secs: u64,
}

impl Default for CpuidleConfig {
    fn default() -> Self {
        let t = Thresholds::default();
        Self {
            enabled: true,
            interval_ms: 10_000,
            user_percent: t.user.percent,
            user_percent_delta: t.user.delta,
            system_percent: t.system.percent,
            system_percent_delta: t.system.delta,
            total_percent: t.total.percent,
            total_percent_delta: t.total.delta,
            capture_secs: 10,
            cooldown_secs: crate::autotracing::DEFAULT_COOLDOWN_SECS,
            global_cooldown_secs: 0,
        }
    }
}

impl CpuidleConfig {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            user: Rule {
                percent: self.user_percent,
                delta: self.user_percent_delta,
            },
            system: Rule {
                percent: self.system_percent,
                delta: self.system_percent_delta,
            },
            total: Rule {
                percent: self.total_percent,
                delta: self.total_percent_delta,
            },
        }
    }
}

fn validate(c: &CpuidleConfig) -> Result<(), String> {
    for (key, v) in [
        ("user_percent", c.user_percent),
        ("user_percent_delta", c.user_percent_delta),
        ("system_percent", c.system_percent),
        ("system_percent_delta", c.system_percent_delta),
        ("total_percent", c.total_percent),
        ("total_percent_delta", c.total_percent_delta),
    ] {
        // Percent of the quota: a container may burst past 100 (cpu.cfs_burst_us).
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{key} must be a non-negative percent, not {v}"));
        }
    }
    if c.capture_secs == 0 {
        return Err("capture_secs must be at least 1".into());
    }
    Ok(())
}

crate::probe_settings!(CpuidleConfig, "cpuidle", validate);

/// Upstream's `tracer_data` of a cpuidle document (`{user,system,total}_percent*`,
/// `flamedata`), plus the quota the percentages are of and the capture's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuidleData {
    pub user_percent: f64,
    pub user_percent_threshold: f64,
    pub user_percent_delta: f64,
    pub user_percent_delta_threshold: f64,
    pub system_percent: f64,
    pub system_percent_threshold: f64,
    pub system_percent_delta: f64,
    pub system_percent_delta_threshold: f64,
    pub total_percent: f64,
    pub total_percent_threshold: f64,
    pub total_percent_delta: f64,
    pub total_percent_delta_threshold: f64,
    /// The container's capacity in cores (quota / period, or the host's CPUs).
    pub cpu_cores: f64,
    #[serde(flatten)]
    pub flame: FlameFields,
}

impl CpuidleData {
    pub fn new(fire: &Fire, cpu_cores: f64, flame: FlameFields) -> Self {
        let t = fire.thresholds;
        CpuidleData {
            user_percent: fire.usage.user,
            user_percent_threshold: t.user.percent,
            user_percent_delta: fire.delta.user,
            user_percent_delta_threshold: t.user.delta,
            system_percent: fire.usage.system,
            system_percent_threshold: t.system.percent,
            system_percent_delta: fire.delta.system,
            system_percent_delta_threshold: t.system.delta,
            total_percent: fire.usage.total,
            total_percent_threshold: t.total.percent,
            total_percent_delta: fire.delta.total,
            total_percent_delta_threshold: t.total.delta,
            cpu_cores,
            flame,
        }
    }
}

/// A container's previous sample.
#[derive(Debug, Clone, Copy)]
struct Last {
    cpu: CgroupCpu,
    at: Instant,
    usage: Option<Usage>,
}

pub struct CpuidleProbe {
    ctx: ProbeContext,
    settings: CpuidleConfig,
    last: HashMap<String, Last>,
    cooldown: Cooldown<String>,
    runner: CaptureRunner,
}

impl Probe for CpuidleProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = CpuidleConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let root = ctx.cgroup.dir("cpu", "/");
        if !root.is_dir() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!("{} missing: no cgroupfs", root.display()),
            });
        }
        Ok(Self {
            ctx: ctx.clone(),
            settings: settings.clone(),
            last: HashMap::new(),
            cooldown: Cooldown::new(
                Duration::from_secs(settings.global_cooldown_secs),
                Duration::from_secs(settings.cooldown_secs),
            ),
            runner: CaptureRunner::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let containers = self.ctx.containers.borrow().clone();
        let host_cpus = self.host_cpus();
        let thresholds = self.settings.thresholds();
        let now = Instant::now();
        let mut seen = HashMap::new();
        let mut fires = Vec::new();
        for container in containers.for_metrics(MetricScope::Normal) {
            // A container that vanished since discovery: skipped this round.
            let Ok(cpu) = self.cgroup_cpu(&container.cgroup_path) else {
                continue;
            };
            let cores = self
                .quota(&container.cgroup_path)
                .map_or(host_cpus, |q| q.min(host_cpus));
            let prev = self.last.get(&container.id).copied();
            let current = prev.and_then(|p| {
                let wall = now.saturating_duration_since(p.at).as_micros() as u64;
                usage(p.cpu, cpu, wall, cores)
            });
            if let Some(cur) = current {
                let fire = decide(prev.and_then(|p| p.usage), cur, thresholds);
                if let Some(fire) = fire.filter(|_| self.cooldown.ready(&container.id, now)) {
                    fires.push(((container.clone(), cores), fire));
                }
            }
            seen.insert(
                container.id.clone(),
                Last {
                    cpu,
                    at: now,
                    usage: current,
                },
            );
        }
        self.last = seen;
        if !self.runner.busy() {
            if let Some(((container, cores), fire)) = pick(fires) {
                self.capture(container, cores, fire, now);
            }
        }
        out.counter(
            "huatuo_bamai_cpuidle_captures_total",
            "cpuidle AutoTracing documents written (with a flame graph or the reason there is none); cumulative.",
        )
        .push(vec![], self.runner.documents.load(Ordering::Relaxed) as f64);
        out.counter(
            "huatuo_bamai_cpuidle_capture_failures_total",
            "cpuidle documents whose capture could not run (profile probe off, perf_event failed, busy); cumulative.",
        )
        .push(vec![], self.runner.failures.load(Ordering::Relaxed) as f64);
        Ok(())
    }
}

impl CpuidleProbe {
    fn capture(&mut self, container: Arc<Container>, cores: f64, fire: Fire, now: Instant) {
        self.cooldown.fired(container.id.clone(), now);
        tracing::info!(
            probe = NAME,
            container = %container.id,
            user = fire.usage.user,
            system = fire.usage.system,
            total = fire.usage.total,
            "capturing the container's on-CPU stacks"
        );
        let target = CaptureTarget::Container {
            id: container.id.clone(),
            cgroup_id: container.cgroup_id,
            cpu_cgroup_id: container.cpu_cgroup_id,
        };
        let request = on_cpu_request(target, Duration::from_secs(self.settings.capture_secs));
        let ctx = self.ctx.clone();
        let fired_at = SystemTime::now();
        self.runner
            .launch(&self.ctx.captures, request, move |outcome| {
                let data = CpuidleData::new(&fire, cores, FlameFields::from_outcome(&outcome));
                let mut document = EventDocument::new(
                    &ctx.hostname,
                    &ctx.region,
                    NAME,
                    Some(&container),
                    container.cgroup_id,
                    serde_json::to_value(&data).unwrap_or_default(),
                );
                document.tracer_type = TracerType::Autotracing;
                // The spike's time, not the end of the capture.
                document.time = go_time(fired_at);
                document.tracer_time = document.time.clone();
                ctx.events.publish(document);
            });
    }

    /// Online CPUs of the host (the capacity of a container without a quota).
    fn host_cpus(&self) -> f64 {
        let online = self.ctx.sysfs_root.join("devices/system/cpu/online");
        std::fs::read_to_string(online)
            .ok()
            .and_then(|t| cpu_list_count(&t))
            .or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .map(|n| n.get() as u32)
            })
            .map_or(1.0, f64::from)
    }

    /// Cumulative user / system time of the cgroup at `rel`.
    fn cgroup_cpu(&self, rel: &str) -> Result<CgroupCpu, ProbeError> {
        let (path, parse): (_, fn(&str) -> Result<CgroupCpu, _>) = if self.ctx.cgroup.is_v2() {
            (
                self.ctx.cgroup.dir("cpu", rel).join("cpu.stat"),
                parse_cpu_stat,
            )
        } else {
            (
                self.ctx.cgroup.dir("cpuacct", rel).join("cpuacct.stat"),
                parse_cpuacct_stat,
            )
        };
        file::read_parsed(NAME, &path, |text| parse(text).map_err(|e| e.to_string()))
    }

    /// The CFS quota in cores; `None` without one (or when it cannot be read).
    fn quota(&self, rel: &str) -> Option<f64> {
        let dir = self.ctx.cgroup.dir("cpu", rel);
        if self.ctx.cgroup.is_v2() {
            let text = std::fs::read_to_string(dir.join("cpu.max")).ok()?;
            parse_cpu_max(&text).ok().flatten()
        } else {
            let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?;
            let period = std::fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
            parse_cfs_quota(&quota, &period).ok().flatten()
        }
    }
}

#[cfg(test)]
mod tests;
