//! memburst (AutoTracing, host): every `interval_ms` (10 s) read anonymous memory
//! (Active(anon) + Inactive(anon) of `/proc/meminfo`) into a window of `window` samples; when
//! the current value is at least (1 + `burst_ratio`) × the oldest of the window and at least
//! `anon_percent_of_total` % of MemTotal (upstream: 60 samples, doubled, 70 %), write an
//! `autotracing` document (`tracer_name = "memburst"`) with the top processes by RSS and their
//! containers. Cooldown `cooldown_secs` (upstream 1800 s).

mod procs;

use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::autotracing::memburst::{parse_meminfo, Fire, Thresholds, Window};
use crate::autotracing::Cooldown;
use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::{EventDocument, TracerType};
use crate::exposition::MetricSet;
use crate::probes::common::file;

pub use procs::{cgroup_path_of, parse_statm_resident, path_within, top_by_rss, ProcessMemory};

const NAME: &str = "memburst";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// AutoTracing memburst: host anonymous memory grew by `burst_ratio` over the window and
/// reached `anon_percent_of_total` % of MemTotal → the top processes by RSS, with container.
pub struct MemburstConfig {
    /// Turn the trigger on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Sampling period in ms (upstream: 10000).
    pub interval_ms: u64,
    /// Samples in the window the growth is measured over (upstream: 60, i.e. 10 minutes).
    pub window: usize,
    /// Growth over the oldest sample of the window: 1.0 = doubled (upstream: 1.0).
    pub burst_ratio: f64,
    /// Anonymous memory must also reach this share of MemTotal, in percent (upstream: 70).
    pub anon_percent_of_total: f64,
    /// Processes listed in `top_memory_usage` (upstream: 10).
    pub top_processes: usize,
    /// Quiet time after a capture, in seconds (upstream: 1800).
    pub cooldown_secs: u64,
}

impl Default for MemburstConfig {
    fn default() -> Self {
        let t = Thresholds::default();
        Self {
            enabled: true,
            interval_ms: 10_000,
            window: t.window,
            burst_ratio: t.burst_ratio,
            anon_percent_of_total: t.anon_percent_of_total,
            top_processes: 10,
            cooldown_secs: crate::autotracing::DEFAULT_COOLDOWN_SECS,
        }
    }
}

fn validate(c: &MemburstConfig) -> Result<(), String> {
    if c.window < 2 {
        return Err(format!(
            "window must hold at least 2 samples, not {}",
            c.window
        ));
    }
    if !c.burst_ratio.is_finite() || c.burst_ratio <= 0.0 {
        return Err(format!(
            "burst_ratio must be a positive number, not {}",
            c.burst_ratio
        ));
    }
    if !c.anon_percent_of_total.is_finite() || !(0.0..=100.0).contains(&c.anon_percent_of_total) {
        return Err(format!(
            "anon_percent_of_total must be a percent in 0..=100, not {}",
            c.anon_percent_of_total
        ));
    }
    if c.top_processes == 0 {
        return Err("top_processes must be at least 1".into());
    }
    Ok(())
}

crate::probe_settings!(MemburstConfig, "memburst", validate);

/// Upstream's `tracer_data` of a memburst document (`top_memory_usage`), plus the numbers that
/// fired the rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemburstData {
    pub top_memory_usage: Vec<ProcessMemory>,
    /// Active(anon) + Inactive(anon) now, bytes.
    pub anon_bytes: u64,
    /// ... at the start of the window, bytes.
    pub oldest_anon_bytes: u64,
    pub mem_total_bytes: u64,
    pub burst_ratio_threshold: f64,
    pub anon_percent_of_total_threshold: f64,
    pub window_samples: usize,
}

impl MemburstData {
    pub fn new(fire: &Fire, top_memory_usage: Vec<ProcessMemory>) -> Self {
        MemburstData {
            top_memory_usage,
            anon_bytes: fire.anon_kib.saturating_mul(1024),
            oldest_anon_bytes: fire.oldest_anon_kib.saturating_mul(1024),
            mem_total_bytes: fire.mem_total_kib.saturating_mul(1024),
            burst_ratio_threshold: fire.thresholds.burst_ratio,
            anon_percent_of_total_threshold: fire.thresholds.anon_percent_of_total,
            window_samples: fire.thresholds.window,
        }
    }
}

pub struct MemburstProbe {
    ctx: ProbeContext,
    settings: MemburstConfig,
    window: Window,
    cooldown: Cooldown<()>,
    captures_total: u64,
}

impl MemburstProbe {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            window: self.settings.window,
            burst_ratio: self.settings.burst_ratio,
            anon_percent_of_total: self.settings.anon_percent_of_total,
        }
    }
}

impl Probe for MemburstProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = MemburstConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let path = ctx.procfs("meminfo");
        if !path.exists() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!("{} missing: no procfs", path.display()),
            });
        }
        Ok(Self {
            ctx: ctx.clone(),
            settings: settings.clone(),
            window: Window::default(),
            cooldown: Cooldown::new(Duration::from_secs(settings.cooldown_secs), Duration::ZERO),
            captures_total: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let path = self.ctx.procfs("meminfo");
        let info = file::read_parsed(NAME, &path, |text| {
            parse_meminfo(text).map_err(|e| e.to_string())
        })?;
        out.gauge(
            "huatuo_bamai_memburst_anon_bytes",
            "Host anonymous memory (Active(anon) + Inactive(anon) of /proc/meminfo), the signal memburst watches.",
        )
        .push(vec![], info.anon_kib as f64 * 1024.0);
        let now = Instant::now();
        if let Some(fire) = self.window.push(info, self.thresholds()) {
            if self.cooldown.ready(&(), now) {
                self.cooldown.fired((), now);
                // The burst is accounted for: measure the next one from here.
                self.window.reset();
                let containers = self.ctx.containers.borrow().clone();
                let top = top_by_rss(
                    &self.ctx.procfs_root,
                    self.settings.top_processes,
                    &containers,
                    self.ctx.cgroup.is_v2(),
                );
                let data = MemburstData::new(&fire, top);
                let mut document = EventDocument::new(
                    &self.ctx.hostname,
                    &self.ctx.region,
                    NAME,
                    None,
                    0,
                    serde_json::to_value(&data).unwrap_or_default(),
                );
                document.tracer_type = TracerType::Autotracing;
                self.captures_total += 1;
                self.ctx.events.publish(document);
            }
        }
        out.counter(
            "huatuo_bamai_memburst_captures_total",
            "memburst AutoTracing documents written; cumulative.",
        )
        .push(vec![], self.captures_total as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
