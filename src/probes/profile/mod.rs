//! profile: on-CPU (perf_event cpu-clock on every CPU) and off-CPU (tp_btf sched_switch, plus
//! sched_wakeup for the blocked/runqueue phases) stacks aggregated in the kernel, symbolised on
//! one dedicated thread. Two ways to use it: on-demand captures of the host, a container or a
//! process (`GET /v1/profile`, `huatuo-bamai profile`; 99 Hz by default), each with its own
//! object and kernel-side filters; and, with `continuous = true`, host-wide windows
//! (`window_secs`, 19 Hz) read from a double buffer and published on the profile bus for the
//! exporters. Nothing is attached while neither asks.

mod assemble;
mod capture;
mod session;
mod symbolize;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::{Container, ContainerWatch};
use crate::core::capture::{OffCpuPhase, ProfileCapturer};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::core::CaptureSlot;
use crate::ebpf::BpfProgramSet;
use crate::exposition::MetricSet;
use crate::profiling::{Profile, ProfileBus, ProfileKind};

pub use assemble::{assemble, WindowMeta};
pub use session::{comm, RawSample, SampleKey, SampleValue};
pub use symbolize::{parse_maps, KernelSymbols, SymbolizerThread};

const NAME: &str = "profile";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Profiling: on-CPU (perf_event cpu-clock) and off-CPU (tp_btf sched_switch) stacks.
pub struct ProfileConfig {
    /// Turn the probe on or off: off, `GET /v1/profile` answers 503.
    pub enabled: bool,
    /// Collection period in ms (at least 100): metrics, and the end of a continuous window.
    pub interval_ms: u64,
    /// Profile the whole host all the time in windows of `window_secs`, published to the
    /// exporters (Pyroscope, the querier). Off: nothing is attached until a capture asks.
    pub continuous: bool,
    /// Continuous mode also records off-CPU time (sched_switch on every context switch).
    pub continuous_offcpu: bool,
    /// Length of a continuous window in seconds.
    pub window_secs: u64,
    /// Windows the probe keeps in memory (the newest of both kinds); `GET
    /// /v1/profile?window=last` answers the newest.
    pub keep_windows: usize,
    /// Sampling frequency of continuous mode (a prime avoids lock-step with timers).
    pub frequency_hz: u32,
    /// Default sampling frequency of an on-demand capture.
    pub capture_frequency_hz: u32,
    /// Longest capture a request may ask for, in seconds.
    pub max_capture_secs: u64,
    /// Off-CPU episodes shorter than this (µs) are not counted.
    pub min_block_us: u64,
    /// Which off-CPU time counts: all (switch-out to switch-in), blocked (until the wakeup) or
    /// runqueue (wakeup or preemption to switch-in), as upstream's `--offcpu-phase`.
    pub offcpu_phase: String,
    /// Continuous mode records kernel stacks only.
    pub kernel_only: bool,
    /// Distinct stacks one buffer holds; more are counted in huatuo_bamai_profile_lost_total.
    pub max_stacks: u32,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            continuous: false,
            continuous_offcpu: false,
            window_secs: 10,
            keep_windows: 6,
            frequency_hz: 19,
            capture_frequency_hz: 99,
            max_capture_secs: 300,
            min_block_us: 1000,
            offcpu_phase: "all".into(),
            kernel_only: false,
            max_stacks: 16384,
        }
    }
}

fn validate(c: &ProfileConfig) -> Result<(), String> {
    OffCpuPhase::parse(&c.offcpu_phase).map_err(|e| format!("offcpu_phase: {e}"))?;
    for (key, hz) in [
        ("frequency_hz", c.frequency_hz),
        ("capture_frequency_hz", c.capture_frequency_hz),
    ] {
        if !(1..=1000).contains(&hz) {
            return Err(format!("{key} must be 1..=1000, got {hz}"));
        }
    }
    if c.window_secs == 0 || c.window_secs > 3600 {
        return Err(format!(
            "window_secs must be 1..=3600, got {}",
            c.window_secs
        ));
    }
    if c.max_capture_secs == 0 {
        return Err("max_capture_secs must be at least 1".into());
    }
    if !(64..=1 << 20).contains(&c.max_stacks) {
        return Err(format!(
            "max_stacks must be 64..=1048576, got {}",
            c.max_stacks
        ));
    }
    Ok(())
}

crate::probe_settings!(ProfileConfig, "profile", validate);

/// Cumulative counters of every session (continuous and captures).
#[derive(Debug, Default)]
pub struct Counters {
    cpu_samples: AtomicU64,
    offcpu_episodes: AtomicU64,
    lost_map_full: AtomicU64,
    lost_stacks: AtomicU64,
    windows: AtomicU64,
    /// BPF run time of finished on-demand captures, ns (their programs are gone afterwards).
    capture_run_ns: AtomicU64,
}

impl Counters {
    /// Adds the run time of a capture's programs as it ends.
    fn add_capture_run_time(&self, programs: &crate::ebpf::BpfProgramSet) {
        let run: std::time::Duration = programs.costs().iter().map(|c| c.run_time).sum();
        self.capture_run_ns
            .fetch_add(run.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The newest continuous windows (both kinds), oldest first.
type RecentWindows = Arc<std::sync::Mutex<VecDeque<Arc<Profile>>>>;

/// The container id a kernel sample's cgroup id is compared with.
fn container_key(key_by_cpu_css: bool) -> fn(&Container) -> u64 {
    if key_by_cpu_css {
        |c| c.cpu_cgroup_id
    } else {
        |c| c.cgroup_id
    }
}

/// Continuous mode: the host-wide session and its window clock.
struct Continuous {
    session: session::Session,
    window: Duration,
    frequency_hz: u32,
    window_started: Instant,
    window_start_unix_ns: u64,
    /// Counters already added from this session (its kernel counters are cumulative).
    last_stats: session::SessionStats,
}

pub struct ProfileProbe {
    continuous: Option<Continuous>,
    capturer: Arc<dyn ProfileCapturer>,
    slot: CaptureSlot,
    symbolizer: SymbolizerThread,
    counters: Arc<Counters>,
    recent: RecentWindows,
    keep_windows: usize,
    bus: ProfileBus,
    containers: ContainerWatch,
    host: String,
    key_by_cpu_css: bool,
}

impl Probe for ProfileProbe {
    const NAME: &'static str = NAME;
    type Settings = ProfileConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let key_by_cpu_css = ctx.cgroup.keys_by_css();
        let symbolizer =
            SymbolizerThread::spawn(ctx.procfs_root.clone()).map_err(|e| ProbeError::Read {
                probe: NAME,
                path: "thread profile-symbolize".into(),
                source: e,
            })?;
        let counters = Arc::new(Counters::default());
        let phase = OffCpuPhase::parse(&settings.offcpu_phase).unwrap_or_default();
        let continuous = if settings.continuous {
            let spec = session::SessionSpec {
                cpu_hz: Some(settings.frequency_hz),
                offcpu: settings.continuous_offcpu.then_some(phase),
                tgid: 0,
                cgroup: 0,
                kernel_only: settings.kernel_only,
                key_by_cpu_css,
                min_block_us: settings.min_block_us,
                max_stacks: settings.max_stacks,
            };
            Some(Continuous {
                session: session::Session::start(&spec)?,
                window: Duration::from_secs(settings.window_secs),
                frequency_hz: settings.frequency_hz,
                window_started: Instant::now(),
                window_start_unix_ns: assemble::unix_now_ns(),
                last_stats: Default::default(),
            })
        } else {
            None
        };
        let recent = RecentWindows::default();
        let capturer: Arc<dyn ProfileCapturer> = Arc::new(capture::Capturer::new(
            capture::CaptureDefaults {
                frequency_hz: settings.capture_frequency_hz,
                max_seconds: settings.max_capture_secs,
                min_block_us: settings.min_block_us,
                max_stacks: settings.max_stacks,
                key_by_cpu_css,
            },
            symbolizer.clone(),
            ctx.containers.clone(),
            ctx.hostname.clone(),
            counters.clone(),
            recent.clone(),
        ));
        ctx.captures.put(capturer.clone());
        Ok(Self {
            continuous,
            capturer,
            slot: ctx.captures.clone(),
            symbolizer,
            counters,
            recent,
            keep_windows: settings.keep_windows,
            bus: ctx.profiles.clone(),
            containers: ctx.containers.clone(),
            host: ctx.hostname.clone(),
            key_by_cpu_css,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        self.finish_window()?;
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let samples = out.counter(
            "huatuo_bamai_profile_samples_total",
            "Stack samples taken by the profile probe: on-CPU samples and off-CPU episodes.",
        );
        samples.push(vec![("type", "cpu".into())], load(&c.cpu_samples));
        samples.push(vec![("type", "offcpu".into())], load(&c.offcpu_episodes));
        let lost = out.counter(
            "huatuo_bamai_profile_lost_total",
            "Samples lost: map full (more distinct stacks than max_stacks) or stack map collisions.",
        );
        lost.push(vec![("reason", "map_full".into())], load(&c.lost_map_full));
        lost.push(vec![("reason", "stack".into())], load(&c.lost_stacks));
        out.counter(
            "huatuo_bamai_profile_symbolize_misses_total",
            "Stack addresses that resolved to no symbol ([unknown] frames).",
        )
        .push(vec![], load(&self.symbolizer.misses));
        out.counter(
            "huatuo_bamai_profile_windows_total",
            "Continuous profile windows published on the profile bus.",
        )
        .push(vec![], load(&c.windows));
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        self.continuous.as_mut().map(|c| &mut c.session.programs)
    }

    fn capture_bpf_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.counters.capture_run_ns.load(Ordering::Relaxed))
    }
}

impl ProfileProbe {
    /// Ends the continuous window when due: flips the double buffer, reads the old half and
    /// hands it to the symbolizer, which publishes the profiles on the bus.
    fn finish_window(&mut self) -> Result<(), ProbeError> {
        let Some(continuous) = self.continuous.as_mut() else {
            return Ok(());
        };
        if continuous.window_started.elapsed() < continuous.window {
            return Ok(());
        }
        let raw = continuous.session.flip_and_drain()?;
        let stats = continuous.session.stats()?;
        let delta = session::SessionStats {
            samples: stats.samples.saturating_sub(continuous.last_stats.samples),
            lost_map_full: stats
                .lost_map_full
                .saturating_sub(continuous.last_stats.lost_map_full),
            lost_stacks: stats
                .lost_stacks
                .saturating_sub(continuous.last_stats.lost_stacks),
            offcpu_episodes: stats
                .offcpu_episodes
                .saturating_sub(continuous.last_stats.offcpu_episodes),
        };
        continuous.last_stats = stats;
        let c = &self.counters;
        c.cpu_samples.fetch_add(delta.samples, Ordering::Relaxed);
        c.offcpu_episodes
            .fetch_add(delta.offcpu_episodes, Ordering::Relaxed);
        c.lost_map_full
            .fetch_add(delta.lost_map_full, Ordering::Relaxed);
        c.lost_stacks
            .fetch_add(delta.lost_stacks, Ordering::Relaxed);
        let now_unix = assemble::unix_now_ns();
        let metas: Vec<WindowMeta> = [ProfileKind::Cpu, ProfileKind::OffCpu]
            .into_iter()
            .filter(|k| *k == ProfileKind::Cpu || continuous.session.has_offcpu())
            .map(|kind| WindowMeta {
                kind,
                start_unix_ns: continuous.window_start_unix_ns,
                duration_ns: now_unix.saturating_sub(continuous.window_start_unix_ns),
                frequency_hz: continuous.frequency_hz,
                host: self.host.clone(),
            })
            .collect();
        continuous.window_started = Instant::now();
        continuous.window_start_unix_ns = now_unix;
        let raw = Arc::new(raw);
        let shared = raw.clone();
        let (bus, containers, recent, keep) = (
            self.bus.clone(),
            self.containers.clone(),
            self.recent.clone(),
            self.keep_windows,
        );
        let (counters, key) = (self.counters.clone(), container_key(self.key_by_cpu_css));
        let submitted = self.symbolizer.submit(shared, move |frames| {
            let set = containers.borrow().clone();
            for meta in metas {
                let profile = Arc::new(assemble(&meta, &raw, frames.clone(), &set, key));
                {
                    let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
                    recent.push_back(profile.clone());
                    while recent.len() > keep {
                        recent.pop_front();
                    }
                }
                bus.publish(profile);
            }
            counters.windows.fetch_add(1, Ordering::Relaxed);
        });
        submitted.map_err(|reason| ProbeError::Unsupported {
            probe: NAME,
            reason,
        })
    }
}

impl Drop for ProfileProbe {
    fn drop(&mut self) {
        self.slot.clear_if(&self.capturer);
    }
}
