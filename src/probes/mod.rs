//! Probes: one folder each (`mod.rs` actor logic + `<name>.bpf.c` + `tests.rs`). A probe implements
//! [`Probe`]; the shared [`crate::actors::probe::ProbeActor`] gives it supervision, ticking, status,
//! BPF link watching and cost reporting. Registering a probe is one line in [`registry`].

pub mod arp;
pub mod common;
pub mod cpu_stat;
pub mod cpu_util;
pub mod diskio;
pub mod dropwatch;
pub mod hungtask;
pub mod iolatency;
pub mod loadavg;
pub mod memory_buddyinfo;
pub mod memory_events;
pub mod memory_reclaim;
pub mod memory_vmstat;
pub mod mountpoint;
pub mod netdev;
pub mod netstat;
pub mod oom;
pub mod pressure;
pub mod qdisc;
pub mod runqlat;
pub mod sockstat;
pub mod softirq;

#[cfg(test)]
pub mod testutil;

use std::future::Future;
use std::pin::Pin;

use ractor::{ActorCell, ActorRef, SpawnErr};

use crate::actors::probe::{ProbeActor, ProbeArgs, ProbeMsg};
use crate::config::{Config, ProbeSettings, ProbesConfig};
use crate::ebpf::{BpfError, BpfProgramSet};
use crate::exposition::{MetricSet, MetricStore};
use crate::supervisor::SupervisorMsg;
use std::sync::Arc;

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

/// What a probe is: how to start it from its settings and how to collect from it.
pub trait Probe: Sized + Send + 'static {
    /// Config section name under `[probes]`, actor name, `tracer` name in status.
    const NAME: &'static str;
    type Settings: ProbeSettings + for<'de> serde::Deserialize<'de>;

    /// Selects this probe's section of the configuration.
    fn settings(probes: &ProbesConfig) -> &Self::Settings;

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

type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorRef<ProbeMsg>, SpawnErr>> + Send>>;

/// A registered probe, type-erased for the supervisor.
pub struct ProbeEntry {
    pub name: &'static str,
    pub enabled: fn(&Config) -> bool,
    /// The probe's section as JSON: a change restarts only this probe.
    pub section: fn(&Config) -> serde_json::Value,
    pub validate: fn(&Config) -> Result<(), String>,
    pub spawn: fn(
        &Config,
        ProbeContext,
        Arc<MetricStore>,
        ActorRef<SupervisorMsg>,
        ActorCell,
    ) -> SpawnFuture,
}

pub fn entry<P: Probe>() -> ProbeEntry {
    ProbeEntry {
        name: P::NAME,
        enabled: |c| P::settings(&c.probes).enabled(),
        section: |c| serde_json::to_value(P::settings(&c.probes)).unwrap_or_default(),
        validate: |c| P::settings(&c.probes).validate(),
        spawn: |config, ctx, store, supervisor, parent| {
            let args = ProbeArgs::<P> {
                settings: P::settings(&config.probes).clone(),
                ctx,
                store,
                supervisor,
            };
            Box::pin(async move {
                ractor::Actor::spawn_linked(None, ProbeActor::<P>::default(), args, parent)
                    .await
                    .map(|(actor, _join)| actor)
            })
        },
    }
}

/// Every probe the agent knows, in start order. Add a probe here (one line).
pub fn registry() -> Vec<ProbeEntry> {
    vec![
        entry::<softirq::SoftirqProbe>(),
        entry::<runqlat::RunqlatProbe>(),
        entry::<iolatency::IolatencyProbe>(),
        entry::<loadavg::LoadavgProbe>(),
        entry::<memory_reclaim::MemoryReclaimProbe>(),
        entry::<cpu_util::CpuUtilProbe>(),
        entry::<cpu_stat::CpuStatProbe>(),
        entry::<memory_vmstat::MemoryVmstatProbe>(),
        entry::<memory_events::MemoryEventsProbe>(),
        entry::<memory_buddyinfo::MemoryBuddyinfoProbe>(),
        entry::<netdev::NetdevProbe>(),
        entry::<netstat::NetstatProbe>(),
        entry::<sockstat::SockstatProbe>(),
        entry::<arp::ArpProbe>(),
        entry::<diskio::DiskioProbe>(),
        entry::<mountpoint::MountpointProbe>(),
        entry::<pressure::PressureProbe>(),
        entry::<qdisc::QdiscProbe>(),
        entry::<hungtask::HungtaskProbe>(),
        entry::<oom::OomProbe>(),
        entry::<dropwatch::DropwatchProbe>(),
    ]
}
