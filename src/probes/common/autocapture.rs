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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Mutex;

    use super::*;
    use crate::core::capture::ProfileCapturer;
    use crate::profiling::{Frame, SampleLabels, StackSample};

    type Pending = tokio::sync::oneshot::Sender<Result<Profile, CaptureError>>;

    /// A capturer whose captures end when the test says so.
    #[derive(Default)]
    struct Manual(Mutex<Vec<Pending>>);

    impl ProfileCapturer for Manual {
        fn start(
            &self,
            _: CaptureRequest,
        ) -> Result<crate::core::capture::CaptureReply, CaptureError> {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
            Ok(rx)
        }

        fn latest_window(&self, _: ProfileKind) -> Option<Arc<Profile>> {
            None
        }
    }

    fn profile() -> Profile {
        Profile {
            kind: ProfileKind::Cpu,
            start_unix_ns: 0,
            duration_ns: 2_000_000_000,
            frequency_hz: 99,
            host: "h".into(),
            samples: vec![StackSample {
                frames: vec![Frame {
                    function: "spin".into(),
                    module: None,
                    kernel: false,
                    address: 1,
                }],
                labels: SampleLabels {
                    pid: 1,
                    comm: "app".into(),
                    ..Default::default()
                },
                count: 7,
                value_ns: 7,
            }],
        }
    }

    fn request() -> CaptureRequest {
        on_cpu_request(CaptureTarget::Host, Duration::from_secs(1))
    }

    #[test]
    fn no_profile_probe_is_an_immediate_outcome_saying_so() {
        let runner = CaptureRunner::default();
        let (tx, rx) = mpsc::channel();
        assert!(runner.launch(&CaptureSlot::default(), request(), move |o| {
            let _ = tx.send(o);
        }));
        let outcome = rx.try_recv().expect("answered at once");
        let fields = FlameFields::from_outcome(&outcome);
        assert!(fields
            .capture_error
            .as_deref()
            .is_some_and(|e| e.contains("probes.profile")));
        assert!(!runner.busy());
        assert_eq!(runner.documents.load(Ordering::Relaxed), 1);
        assert_eq!(runner.failures.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn one_capture_at_a_time_and_its_profile_becomes_flame_fields() {
        let capturer = Arc::new(Manual::default());
        let slot = CaptureSlot::default();
        slot.put(capturer.clone());
        let runner = CaptureRunner::default();
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        assert!(runner.launch(&slot, request(), move |o| {
            let _ = first.send(o);
        }));
        assert!(runner.busy());
        assert!(
            !runner.launch(&slot, request(), move |o| {
                let _ = tx.send(o);
            }),
            "a second capture while one runs"
        );
        let pending = capturer.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let _ = pending.expect("one capture started").send(Ok(profile()));
        let outcome = rx.recv_timeout(Duration::from_secs(5)).expect("outcome");
        let fields = FlameFields::from_outcome(&outcome);
        assert_eq!(fields.capture_error, None);
        assert_eq!(fields.capture_samples, 7);
        assert_eq!(fields.capture_seconds, 2.0);
        assert_eq!(fields.folded_stacks, "app;spin 7\n");
        assert_eq!(fields.flamedata.first().map(|f| f.value), Some(7));
        // The flag clears once the outcome is handed over.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while runner.busy() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!runner.busy());
        assert_eq!(runner.failures.load(Ordering::Relaxed), 0);
    }
}
