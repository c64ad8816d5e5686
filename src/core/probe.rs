//! The probe contract: what a probe is ([`Probe`]), what it may read ([`ProbeContext`]), how it
//! fails ([`ProbeError`]) and what its config section offers ([`ProbeSettings`]). The shared
//! probe actor (`actors::probe`) runs any type that implements it.

use std::time::Duration;

use crate::config::Section;
use crate::ebpf::{BpfError, BpfProgramSet};
use crate::exposition::MetricSet;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// The host lacks what this (non-BPF) probe reads, e.g. PSI files on a kernel without PSI.
    #[error("{probe}: unsupported on this host: {reason}")]
    Unsupported { probe: &'static str, reason: String },
    #[error("{probe}: cannot read {path}: {source}")]
    Read {
        probe: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{probe}: malformed {path}: {reason}")]
    Parse {
        probe: &'static str,
        path: String,
        reason: String,
    },
}

impl ProbeError {
    /// The probe a file error belongs to (`None` for BPF errors, which name it themselves).
    pub fn probe(&self) -> Option<&'static str> {
        match self {
            ProbeError::Unsupported { probe, .. }
            | ProbeError::Read { probe, .. }
            | ProbeError::Parse { probe, .. } => Some(probe),
            ProbeError::Bpf(_) => None,
        }
    }

    /// The kernel lacks what this probe needs: report `inactive`, do not restart.
    pub fn is_unsupported(&self) -> bool {
        match self {
            ProbeError::Bpf(e) => e.is_unsupported(),
            ProbeError::Unsupported { .. } => true,
            _ => false,
        }
    }
}

/// What every probe may read besides its own settings.
#[derive(Clone)]
pub struct ProbeContext {
    pub procfs_root: std::path::PathBuf,
    pub sysfs_root: std::path::PathBuf,
    pub cgroup: crate::containers::CgroupLayout,
    /// The latest containers, keyed by cgroup id (empty while discovery is off).
    pub containers: crate::containers::ContainerWatch,
    /// Where event probes publish documents (the event bus).
    pub events: crate::events::EventSender,
    /// The profile bus (the profile probe publishes its windows here).
    pub profiles: crate::profiling::ProfileBus,
    /// Where the profile probe offers on-demand captures (`GET /v1/profile`).
    pub captures: super::capture::CaptureSlot,
    /// `host` / `region` of event documents.
    pub hostname: String,
    pub region: String,
}

impl ProbeContext {
    /// `<procfs_root>/<rel>`.
    pub fn procfs(&self, rel: &str) -> std::path::PathBuf {
        self.procfs_root.join(rel)
    }
}

/// Upstream's tracer roles bit set (`FlagMetric` = 1, `FlagTracing` = 2), shown as `flag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Roles(pub u32);

impl Roles {
    pub const NONE: Roles = Roles(0);
    pub const METRICS: Roles = Roles(1);
    /// Metrics (its counters) and event documents.
    pub const EVENTS: Roles = Roles(1 | 2);
}

/// What a probe is: how to start it from its settings and how to collect from it.
pub trait Probe: Sized + Send + 'static {
    /// Actor name, `tracer` name in status; its section is `[probes.<NAME>]`.
    const NAME: &'static str;
    /// What the probe produces, as upstream's tracer `flag` (`/tracers`): metrics, and for
    /// event probes also documents.
    const ROLES: Roles = Roles::METRICS;
    type Settings: ProbeSettings;

    /// Loads and attaches (runs on a blocking thread). `Err` that `is_unsupported()` makes the
    /// probe `inactive`; any other `Err` is a failure the supervisor retries with backoff.
    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError>;

    /// Reads maps or files into `out`, which replaces everything the probe exported before;
    /// called every `interval_ms`. Return `Err` only when nothing could be collected.
    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError>;

    /// BPF probes expose their programs so the shared code can watch links and read costs.
    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        None
    }

    /// Cumulative BPF run time of the probe's short-lived capture programs (not in
    /// `programs()`), so the sampler counts captures against the budget like any probe.
    fn capture_bpf_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Adaptive sampling: the divisor in force (keep 1 event in N), `None` when the probe has no
    /// knob. BPF probes whose object declares `HUATUO_SAMPLING_KNOB` get this for free.
    fn sampling_divisor(&mut self) -> Option<u32> {
        self.programs().and_then(|set| set.sampling_divisor())
    }

    /// Sets the sampling divisor (called only when [`Probe::sampling_divisor`] is `Some`).
    fn set_sampling_divisor(&mut self, divisor: u32) -> Result<(), ProbeError> {
        match self.programs() {
            Some(set) => Ok(set.set_sampling_divisor(divisor)?),
            None => Err(ProbeError::Unsupported {
                probe: Self::NAME,
                reason: "no sampling knob".into(),
            }),
        }
    }
}

/// What every probe section offers the shared probe machinery.
pub trait ProbeSettings: Section {
    fn enabled(&self) -> bool;
    /// Period of the probe's `Tick`: map reads / file reads and the BPF link check.
    fn interval(&self) -> Duration;
}

/// Makes a probe's config struct (with `enabled: bool` and `interval_ms: u64` fields) its
/// `[probes.<name>]` section: `probe_settings!(RunqlatConfig, "runqlat")`. An optional third
/// argument is a `fn(&Self) -> Result<(), String>` of further checks.
#[macro_export]
macro_rules! probe_settings {
    ($ty:ty, $name:literal) => {
        $crate::probe_settings!($ty, $name, |_: &$ty| Ok(()));
    };
    ($ty:ty, $name:literal, $extra:expr) => {
        impl $crate::config::Section for $ty {
            const PATH: &'static str = concat!("probes.", $name);

            fn validate(&self) -> Result<(), $crate::config::Invalid> {
                $crate::config::check_interval_ms(self.interval_ms)?;
                let extra: fn(&$ty) -> Result<(), String> = $extra;
                Ok(extra(self)?)
            }
        }
        impl $crate::core::probe::ProbeSettings for $ty {
            fn enabled(&self) -> bool {
                self.enabled
            }
            fn interval(&self) -> std::time::Duration {
                std::time::Duration::from_millis(self.interval_ms)
            }
        }
    };
}
