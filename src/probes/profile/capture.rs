//! On-demand captures (`GET /v1/profile`, `huatuo-bamai profile`): each loads its own object with
//! the target's filters in the kernel, samples for the requested time on its own thread, and
//! hands the stacks to the symbolizer thread. One capture per target at a time.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::containers::ContainerWatch;
use crate::core::capture::{
    CaptureError, CaptureReply, CaptureRequest, CaptureTarget, ProfileCapturer,
};
use crate::profiling::{Profile, ProfileKind};

use super::assemble::{assemble, unix_now_ns, WindowMeta};
use super::session::{Session, SessionSpec};
use super::symbolize::SymbolizerThread;
use super::{container_key, Counters};

/// Captures running at once (each holds perf events on every CPU and its maps).
pub const MAX_CONCURRENT: usize = 4;

/// What a capture takes from the probe's settings.
#[derive(Debug, Clone)]
pub struct CaptureDefaults {
    pub frequency_hz: u32,
    pub max_seconds: u64,
    pub min_block_us: u64,
    pub max_stacks: u32,
    pub key_by_cpu_css: bool,
}

pub struct Capturer {
    defaults: CaptureDefaults,
    busy: Arc<Mutex<HashSet<CaptureTarget>>>,
    symbolizer: SymbolizerThread,
    containers: ContainerWatch,
    host: String,
    counters: Arc<Counters>,
    recent: super::RecentWindows,
}

/// Frees the target when the capture ends, however it ends.
struct BusyGuard {
    busy: Arc<Mutex<HashSet<CaptureTarget>>>,
    target: CaptureTarget,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.target);
    }
}

impl Capturer {
    pub fn new(
        defaults: CaptureDefaults,
        symbolizer: SymbolizerThread,
        containers: ContainerWatch,
        host: String,
        counters: Arc<Counters>,
        recent: super::RecentWindows,
    ) -> Self {
        Self {
            defaults,
            busy: Default::default(),
            symbolizer,
            containers,
            host,
            counters,
            recent,
        }
    }

    fn check(&self, request: &CaptureRequest) -> Result<(), CaptureError> {
        let max = self.defaults.max_seconds;
        if request.duration.is_zero() || request.duration > Duration::from_secs(max) {
            return Err(CaptureError::Invalid(format!(
                "seconds must be 1..={max} (probes.profile.max_capture_secs), got {}",
                request.duration.as_secs_f64()
            )));
        }
        if let Some(hz) = request.frequency_hz {
            if !(1..=1000).contains(&hz) {
                return Err(CaptureError::Invalid(format!(
                    "frequency must be 1..=1000 Hz, got {hz}"
                )));
            }
        }
        if let CaptureTarget::Process { pid } = request.target {
            if pid == 0 {
                return Err(CaptureError::Invalid("pid must not be 0".into()));
            }
        }
        Ok(())
    }

    fn reserve(&self, target: &CaptureTarget) -> Result<BusyGuard, CaptureError> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.contains(target) {
            return Err(CaptureError::Busy {
                target: target.to_string(),
            });
        }
        if busy.len() >= MAX_CONCURRENT {
            return Err(CaptureError::Busy {
                target: format!("{MAX_CONCURRENT} targets (the most captures at once)"),
            });
        }
        busy.insert(target.clone());
        Ok(BusyGuard {
            busy: self.busy.clone(),
            target: target.clone(),
        })
    }
}

impl ProfileCapturer for Capturer {
    fn latest_window(&self, kind: ProfileKind) -> Option<Arc<Profile>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().find(|p| p.kind == kind).cloned()
    }

    fn start(&self, request: CaptureRequest) -> Result<CaptureReply, CaptureError> {
        self.check(&request)?;
        let guard = self.reserve(&request.target)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let frequency_hz = request.frequency_hz.unwrap_or(self.defaults.frequency_hz);
        let (tgid, cgroup) = match &request.target {
            CaptureTarget::Host => (0, 0),
            CaptureTarget::Container {
                cgroup_id,
                cpu_cgroup_id,
                ..
            } => {
                let key = if self.defaults.key_by_cpu_css {
                    *cpu_cgroup_id
                } else {
                    *cgroup_id
                };
                // A 0 filter means "everyone": never let an unknown cgroup widen to the host.
                if key == 0 {
                    return Err(CaptureError::Invalid(format!(
                        "{} has no cgroup id to filter on",
                        request.target
                    )));
                }
                (0, key)
            }
            CaptureTarget::Process { pid } => (*pid, 0),
        };
        let spec = SessionSpec {
            cpu_hz: (request.kind == ProfileKind::Cpu).then_some(frequency_hz),
            offcpu: (request.kind == ProfileKind::OffCpu).then_some(request.phase),
            tgid,
            cgroup,
            kernel_only: request.kernel_only,
            key_by_cpu_css: self.defaults.key_by_cpu_css,
            min_block_us: self.defaults.min_block_us,
            max_stacks: self.defaults.max_stacks,
        };
        let symbolizer = self.symbolizer.clone();
        let containers = self.containers.clone();
        let host = self.host.clone();
        let counters = self.counters.clone();
        let key_by_css = self.defaults.key_by_cpu_css;
        std::thread::Builder::new()
            .name("profile-capture".into())
            .spawn(move || {
                let start_unix_ns = unix_now_ns();
                let started = Instant::now();
                let raw = match run_session(&spec, request.duration, &tx, &counters) {
                    Ok(raw) => raw,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let meta = WindowMeta {
                    kind: request.kind,
                    start_unix_ns,
                    duration_ns: started.elapsed().as_nanos() as u64,
                    frequency_hz,
                    host,
                };
                let raw = Arc::new(raw);
                let shared = raw.clone();
                let submitted = symbolizer.submit(shared, move |frames| {
                    let set = containers.borrow().clone();
                    let profile: Profile =
                        assemble(&meta, &raw, frames, &set, container_key(key_by_css));
                    let _ = tx.send(Ok(profile));
                    drop(guard);
                });
                if let Err(e) = submitted {
                    tracing::error!(probe = super::NAME, error = %e, "capture not symbolised");
                }
            })
            .map_err(|e| CaptureError::Failed(format!("cannot start a capture thread: {e}")))?;
        Ok(rx)
    }
}

/// Attaches, waits `duration` (ending early when the requester went away), reads and detaches.
fn run_session(
    spec: &SessionSpec,
    duration: Duration,
    reply: &tokio::sync::oneshot::Sender<Result<Profile, CaptureError>>,
    counters: &Counters,
) -> Result<Vec<super::session::RawSample>, CaptureError> {
    let mut session = Session::start(spec).map_err(|e| {
        if e.is_unsupported() {
            CaptureError::Unavailable(e.to_string())
        } else {
            CaptureError::Failed(e.to_string())
        }
    })?;
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline && !reply.is_closed() {
        std::thread::sleep(
            Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    let raw = session
        .flip_and_drain()
        .map_err(|e| CaptureError::Failed(e.to_string()))?;
    if let Ok(stats) = session.stats() {
        counters.add(&stats);
    }
    counters.add_capture_run_time(&session.programs);
    Ok(raw)
}

impl Counters {
    fn add(&self, stats: &super::session::SessionStats) {
        self.cpu_samples.fetch_add(stats.samples, Ordering::Relaxed);
        self.offcpu_episodes
            .fetch_add(stats.offcpu_episodes, Ordering::Relaxed);
        self.lost_map_full
            .fetch_add(stats.lost_map_full, Ordering::Relaxed);
        self.lost_stacks
            .fetch_add(stats.lost_stacks, Ordering::Relaxed);
    }
}
