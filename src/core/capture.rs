//! On-demand profile captures: what `GET /v1/profile` asks the profile probe for. The probe puts
//! its [`ProfileCapturer`] in the [`CaptureSlot`] when it starts and takes it out when it stops
//! (like the event store slot), so the HTTP service never names a probe.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::profiling::{Profile, ProfileKind};

/// Whose stacks a capture takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CaptureTarget {
    Host,
    /// A container, by its id, filtered in the kernel by its cgroup: the cpu css cgroup
    /// (`cpu_cgroup_id`) on v1 and hybrid hosts, the default-hierarchy `cgroup_id` on v2.
    Container {
        id: String,
        cgroup_id: u64,
        cpu_cgroup_id: u64,
    },
    /// A process (thread group) by pid.
    Process {
        pid: u32,
    },
}

impl std::fmt::Display for CaptureTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureTarget::Host => write!(f, "the host"),
            CaptureTarget::Container { id, .. } => {
                write!(f, "container {}", &id[..id.len().min(12)])
            }
            CaptureTarget::Process { pid } => write!(f, "pid {pid}"),
        }
    }
}

/// Which part of off-CPU time counts, as upstream profiler's `--offcpu-phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffCpuPhase {
    /// Switch-out to switch-in.
    #[default]
    All,
    /// Blocked: switch-out (not runnable) to wakeup.
    Blocked,
    /// Waiting on the run queue: wakeup (or a runnable switch-out) to switch-in.
    Runqueue,
}

impl OffCpuPhase {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "all" => Ok(OffCpuPhase::All),
            "blocked" => Ok(OffCpuPhase::Blocked),
            "runqueue" => Ok(OffCpuPhase::Runqueue),
            other => Err(format!(
                "unknown off-CPU phase `{other}` (one of all, blocked, runqueue)"
            )),
        }
    }

    /// The value the BPF program's `offcpu_phase` takes.
    pub fn code(self) -> u32 {
        match self {
            OffCpuPhase::All => 0,
            OffCpuPhase::Blocked => 1,
            OffCpuPhase::Runqueue => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    pub kind: ProfileKind,
    pub duration: Duration,
    pub target: CaptureTarget,
    /// On-CPU sampling frequency; `None` = the probe's `capture_frequency_hz`.
    pub frequency_hz: Option<u32>,
    pub phase: OffCpuPhase,
    /// Kernel stacks only.
    pub kernel_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A capture of the same target runs already.
    #[error("a profile capture of {target} is already running; wait for it to finish")]
    Busy { target: String },
    #[error("invalid capture request: {0}")]
    Invalid(String),
    #[error("profiling unavailable: {0}")]
    Unavailable(String),
    #[error("profile capture failed: {0}")]
    Failed(String),
}

/// The pending result of a started capture.
pub type CaptureReply = tokio::sync::oneshot::Receiver<Result<Profile, CaptureError>>;

/// What can take a capture (the profile probe).
pub trait ProfileCapturer: Send + Sync {
    /// Starts a capture; `Busy` at once when the target is being captured already.
    fn start(&self, request: CaptureRequest) -> Result<CaptureReply, CaptureError>;

    /// The newest finished continuous window of `kind` (`None` when continuous mode is off or
    /// no window has finished yet).
    fn latest_window(&self, kind: ProfileKind) -> Option<Arc<Profile>>;
}

/// Where the running profile probe offers captures; empty while it is off.
#[derive(Clone, Default)]
pub struct CaptureSlot(Arc<RwLock<Option<Arc<dyn ProfileCapturer>>>>);

impl CaptureSlot {
    pub fn get(&self) -> Option<Arc<dyn ProfileCapturer>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn put(&self, capturer: Arc<dyn ProfileCapturer>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(capturer);
    }

    /// Empties the slot if it still holds `capturer` (a restarted probe may have replaced it).
    pub fn clear_if(&self, capturer: &Arc<dyn ProfileCapturer>) {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, capturer)) {
            *slot = None;
        }
    }
}
