//! The capture step of the AutoTracing flame-graph triggers (cpusys, cpuidle): ask the profile
//! probe (through the capture slot) for an on-CPU capture without blocking `collect()`, one
//! capture of a trigger at a time, and hand the outcome — the profile, or why there is none — to
//! the trigger, which publishes its document either way (a capture that cannot run is a document
//! saying why, not silence).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::core::capture::{CaptureError, CaptureRequest, CaptureSlot, CaptureTarget, OffCpuPhase};
use crate::profiling::flamedata::{to_flamedata, FrameData};
use crate::profiling::folded::to_folded;
use crate::profiling::{Profile, ProfileKind};

/// What a trigger's capture produced.
#[derive(Debug, Clone)]
pub enum CaptureOutcome {
    Captured(Profile),
    /// The capture did not run or failed; the reason names what to fix.
    NotRun(String),
}

/// The flame graph fields of a capture document: upstream's `flamedata`, plus the folded stacks
/// (`perf script | stackcollapse` text, what `/v1/events/<id>/flamegraph.svg` renders) and
/// what the capture covered or why it did not run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlameFields {
    pub flamedata: Vec<FrameData>,
    pub folded_stacks: String,
    /// On-CPU samples in the capture (0 when it did not run).
    pub capture_samples: u64,
    pub capture_seconds: f64,
    /// Why there is no flame graph (`null` when the capture ran).
    pub capture_error: Option<String>,
}

impl FlameFields {
    pub fn from_outcome(outcome: &CaptureOutcome) -> Self {
        match outcome {
            CaptureOutcome::Captured(profile) => FlameFields {
                flamedata: to_flamedata(profile),
                folded_stacks: to_folded(profile),
                capture_samples: profile.samples.iter().map(|s| s.count).sum(),
                capture_seconds: profile.duration_ns as f64 / 1e9,
                capture_error: None,
            },
            CaptureOutcome::NotRun(reason) => FlameFields {
                flamedata: Vec::new(),
                folded_stacks: String::new(),
                capture_samples: 0,
                capture_seconds: 0.0,
                capture_error: Some(reason.clone()),
            },
        }
    }
}

/// An on-CPU capture request of `target` for `duration` at the profile probe's default frequency
/// (upstream's perf: 99 Hz, user + kernel stacks).
pub fn on_cpu_request(target: CaptureTarget, duration: Duration) -> CaptureRequest {
    CaptureRequest {
        kind: ProfileKind::Cpu,
        duration,
        target,
        frequency_hz: None,
        phase: OffCpuPhase::All,
        kernel_only: false,
    }
}

/// One trigger's capture runner: at most one capture in flight, counted.
#[derive(Clone, Default)]
pub struct CaptureRunner {
    running: Arc<AtomicBool>,
    /// Documents written (captured or not).
    pub documents: Arc<AtomicU64>,
    /// Documents whose capture could not run.
    pub failures: Arc<AtomicU64>,
}

/// Clears the runner's flag when the capture is over, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl CaptureRunner {
    /// A capture of this trigger is in flight.
    pub fn busy(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Starts `request` and returns at once; `done` gets the outcome on the tokio runtime (on a
    /// thread of its own outside one), or right away when the capture cannot start. `false`
    /// (and nothing started, `done` dropped) while a capture of this trigger is still running.
    pub fn launch(
        &self,
        slot: &CaptureSlot,
        request: CaptureRequest,
        done: impl FnOnce(CaptureOutcome) + Send + 'static,
    ) -> bool {
        if self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        let running = Running(self.running.clone());
        let documents = self.documents.clone();
        let failures = self.failures.clone();
        let finish = move |outcome: CaptureOutcome| {
            if matches!(outcome, CaptureOutcome::NotRun(_)) {
                failures.fetch_add(1, Ordering::Relaxed);
            }
            documents.fetch_add(1, Ordering::Relaxed);
            done(outcome);
            drop(running);
        };
        let Some(capturer) = slot.get() else {
            finish(CaptureOutcome::NotRun(
                "the profile probe is not running (enable probes.profile)".into(),
            ));
            return true;
        };
        let reply = match capturer.start(request) {
            Ok(reply) => reply,
            Err(e) => {
                finish(CaptureOutcome::NotRun(e.to_string()));
                return true;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { finish(outcome(reply.await)) });
            }
            Err(_) => {
                std::thread::spawn(move || finish(outcome(reply.blocking_recv())));
            }
        }
        true
    }
}

fn outcome(
    reply: Result<Result<Profile, CaptureError>, tokio::sync::oneshot::error::RecvError>,
) -> CaptureOutcome {
    match reply {
        Ok(Ok(profile)) => CaptureOutcome::Captured(profile),
        Ok(Err(e)) => CaptureOutcome::NotRun(e.to_string()),
        Err(_) => CaptureOutcome::NotRun(
            "the capture ended without a result (the profile probe stopped)".into(),
        ),
    }
}
