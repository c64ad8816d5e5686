//! cpusys (AutoTracing, host): every `interval_ms` (10 s) read the `cpu` line of `/proc/stat`;
//! when the host's sys% is above `system_percent` and rose by more than
//! `system_percent_delta` since the previous sample (upstream: 45 and 20), ask the profile probe
//! for a `capture_secs` on-CPU capture of the host and write an `autotracing` document
//! (`tracer_name = "cpusys"`) with the percentages, the thresholds and the flame graph. Global
//! cooldown `cooldown_secs` (upstream `IntervalTracing`, 1800 s).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::autotracing::cpusys::{decide, parse_proc_stat, system_percent, CpuTimes, Thresholds};
use crate::autotracing::Cooldown;
use crate::core::capture::CaptureTarget;
use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::time::go_time;
use crate::events::{EventDocument, TracerType};
use crate::exposition::MetricSet;
use crate::probes::common::autocapture::{on_cpu_request, CaptureRunner, FlameFields};
use crate::probes::common::file;

const NAME: &str = "cpusys";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// AutoTracing cpusys: host sys% above `system_percent` and rising by more than
/// `system_percent_delta` between two samples → on-CPU flame graph of the host (needs the
/// profile probe).
pub struct CpusysConfig {
    /// Turn the trigger on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Sampling period in ms (upstream: 10000); sys% is measured over one period.
    pub interval_ms: u64,
    /// Capture when the host's sys% is above this (upstream: 45).
    pub system_percent: f64,
    /// ... and rose by more than this many points since the previous sample (upstream: 20).
    pub system_percent_delta: f64,
    /// Length of the on-CPU capture in seconds (upstream: 10).
    pub capture_secs: u64,
    /// Quiet time after a capture, in seconds (upstream: 1800).
    pub cooldown_secs: u64,
}

impl Default for CpusysConfig {
    fn default() -> Self {
        let t = Thresholds::default();
        Self {
            enabled: true,
            interval_ms: 10_000,
            system_percent: t.system_percent,
            system_percent_delta: t.system_percent_delta,
            capture_secs: 10,
            cooldown_secs: crate::autotracing::DEFAULT_COOLDOWN_SECS,
        }
    }
}

fn validate(c: &CpusysConfig) -> Result<(), String> {
    for (key, v) in [
        ("system_percent", c.system_percent),
        ("system_percent_delta", c.system_percent_delta),
    ] {
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            return Err(format!("{key} must be a percent in 0..=100, not {v}"));
        }
    }
    if c.capture_secs == 0 {
        return Err("capture_secs must be at least 1".into());
    }
    Ok(())
}

crate::probe_settings!(CpusysConfig, "cpusys", validate);

/// Upstream's `tracer_data` of a cpusys document (`system_percent*`, `flamedata`), plus the
/// folded stacks and the capture's coverage or why it did not run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpusysData {
    pub system_percent: f64,
    pub system_percent_threshold: f64,
    pub system_percent_delta: f64,
    pub system_percent_delta_threshold: f64,
    #[serde(flatten)]
    pub flame: FlameFields,
}

pub struct CpusysProbe {
    ctx: ProbeContext,
    settings: CpusysConfig,
    last_times: Option<CpuTimes>,
    last_percent: Option<f64>,
    cooldown: Cooldown<()>,
    runner: CaptureRunner,
}

impl CpusysProbe {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            system_percent: self.settings.system_percent,
            system_percent_delta: self.settings.system_percent_delta,
        }
    }
}

impl Probe for CpusysProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = CpusysConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let path = ctx.procfs("stat");
        let text = file::read(NAME, &path).map_err(|e| ProbeError::Unsupported {
            probe: NAME,
            reason: e.to_string(),
        })?;
        let first =
            parse_proc_stat(&text).map_err(|e| file::malformed(NAME, &path, e.to_string()))?;
        Ok(Self {
            ctx: ctx.clone(),
            settings: settings.clone(),
            last_times: Some(first),
            last_percent: None,
            cooldown: Cooldown::new(Duration::from_secs(settings.cooldown_secs), Duration::ZERO),
            runner: CaptureRunner::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let path = self.ctx.procfs("stat");
        let times = file::read_parsed(NAME, &path, |text| {
            parse_proc_stat(text).map_err(|e| e.to_string())
        })?;
        let percent = self
            .last_times
            .replace(times)
            .and_then(|prev| system_percent(prev, times));
        if let Some(percent) = percent {
            out.gauge(
                "huatuo_bamai_cpusys_system_percent",
                "Host sys% over the last cpusys interval (/proc/stat), the signal the trigger watches.",
            )
            .push(vec![], percent);
            let fire = decide(self.last_percent, percent, self.thresholds());
            self.last_percent = Some(percent);
            let now = Instant::now();
            if let Some(fire) = fire {
                if self.cooldown.ready(&(), now) && !self.runner.busy() {
                    self.cooldown.fired((), now);
                    tracing::info!(probe = NAME, %fire, "capturing the host's on-CPU stacks");
                    let ctx = self.ctx.clone();
                    let fired_at = SystemTime::now();
                    let request = on_cpu_request(
                        CaptureTarget::Host,
                        Duration::from_secs(self.settings.capture_secs),
                    );
                    self.runner
                        .launch(&self.ctx.captures, request, move |outcome| {
                            let data = CpusysData {
                                system_percent: fire.system_percent,
                                system_percent_threshold: fire.thresholds.system_percent,
                                system_percent_delta: fire.system_percent_delta,
                                system_percent_delta_threshold: fire
                                    .thresholds
                                    .system_percent_delta,
                                flame: FlameFields::from_outcome(&outcome),
                            };
                            publish(&ctx, &data, fired_at);
                        });
                }
            }
        }
        let documents = self.runner.documents.load(Ordering::Relaxed);
        let failures = self.runner.failures.load(Ordering::Relaxed);
        out.counter(
            "huatuo_bamai_cpusys_captures_total",
            "cpusys AutoTracing documents written (with a flame graph or the reason there is none); cumulative.",
        )
        .push(vec![], documents as f64);
        out.counter(
            "huatuo_bamai_cpusys_capture_failures_total",
            "cpusys documents whose capture could not run (profile probe off, perf_event failed, busy); cumulative.",
        )
        .push(vec![], failures as f64);
        Ok(())
    }
}

/// Writes the document; its `time` is the spike's (`fired_at`), not the end of the capture.
fn publish(ctx: &ProbeContext, data: &CpusysData, fired_at: SystemTime) {
    let mut document = EventDocument::new(
        &ctx.hostname,
        &ctx.region,
        NAME,
        None,
        0,
        serde_json::to_value(data).unwrap_or_default(),
    );
    document.tracer_type = TracerType::Autotracing;
    document.time = go_time(fired_at);
    document.tracer_time = document.time.clone();
    ctx.events.publish(document);
}

#[cfg(test)]
mod tests;
