//! Status vocabulary: the state of every supervised part, the agent's status as `ctl status`,
//! `/tracers` and `/readyz` show it, and the board the supervisor publishes it on so readers
//! never wait for the supervisor (a reload may keep it busy for seconds).

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Instant;

use serde::Serialize;

use super::probe::Roles;
use crate::events::elasticsearch::status::SinkStatus;
use crate::profiling::pyroscope::PyroscopeStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    Service,
    Probe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    Starting,
    Running,
    Inactive,
    Restarting,
    Failed,
    Disabled,
}

impl ChildState {
    pub const ALL: [ChildState; 6] = [
        ChildState::Starting,
        ChildState::Running,
        ChildState::Inactive,
        ChildState::Restarting,
        ChildState::Failed,
        ChildState::Disabled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Inactive => "inactive",
            ChildState::Restarting => "restarting",
            ChildState::Failed => "failed",
            ChildState::Disabled => "disabled",
        }
    }

    /// Whether a part in this state lets the agent count as ready: services must run; a probe
    /// may also be inactive (kernel lacks its feature) or disabled.
    pub fn is_ready(&self, kind: PartKind) -> bool {
        match kind {
            PartKind::Service => *self == ChildState::Running,
            PartKind::Probe => matches!(
                self,
                ChildState::Running | ChildState::Inactive | ChildState::Disabled
            ),
        }
    }
}

/// What a part reports about its own work, shown in its status row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartDetail {
    Elasticsearch(SinkStatus),
    Pyroscope(PyroscopeStatus),
}

impl PartDetail {
    /// One line for the DETAIL column of `ctl status`.
    pub fn summary(&self) -> String {
        match self {
            PartDetail::Elasticsearch(sink) => sink.summary(),
            PartDetail::Pyroscope(pusher) => pusher.summary(),
        }
    }
}

/// One row of `ctl status` and `/tracers`. The supervisor publishes the rows it knows
/// (name … `started_at`); the board fills uptime, sampling and the part's detail when read.
#[derive(Debug, Clone, Serialize)]
pub struct ActorStatus {
    pub name: String,
    pub kind: PartKind,
    /// Upstream's tracer `flag` (1 metrics, 2 events).
    pub flag: Roles,
    pub state: ChildState,
    /// Why the actor is inactive or failed.
    pub reason: Option<String>,
    pub restarts: u64,
    pub last_error: Option<String>,
    /// Filled from `started_at` when the status is read.
    pub uptime_secs: Option<u64>,
    /// When the part's actor last started (the supervisor's record).
    #[serde(skip)]
    pub started_at: Option<Instant>,
    /// Adaptive sampling of a throttleable probe: 1 event in N is kept.
    pub sampling_divisor: Option<u32>,
    /// The part's own one-line account of its work (e.g. the Elasticsearch sink's connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The part's detailed report, under its kind's name (`"elasticsearch": {…}`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<PartDetail>,
}

impl ActorStatus {
    /// Upstream's tracer `hit`: how many times the part has run, the first start plus every
    /// restart (0 for a part never started).
    pub fn runs(&self) -> u64 {
        let started = self.started_at.is_some() || self.state != ChildState::Disabled;
        self.restarts + u64::from(started)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub version: &'static str,
    pub uptime_secs: u64,
    pub ready: bool,
    pub actors: Vec<ActorStatus>,
    /// The sampler's overhead view; `None` while the sampler is off or warming up.
    pub overhead: Option<OverheadStatus>,
}

impl AgentStatus {
    /// Parts that keep the agent from being ready, as "name (state)".
    pub fn not_ready(&self) -> Vec<String> {
        self.actors
            .iter()
            .filter(|a| !a.state.is_ready(a.kind))
            .map(|a| format!("{} ({})", a.name, a.state.as_str()))
            .collect()
    }
}

/// Where the supervisor publishes its children's rows and parts publish their details; read by
/// `/readyz`, `/tracers`, `/metrics` and `ctl status` without a round trip to the supervisor.
pub struct StatusBoard {
    started: Instant,
    rows: RwLock<Vec<ActorStatus>>,
    details: RwLock<BTreeMap<String, PartDetail>>,
    /// The sampler's latest overhead view; empty until its second round.
    overhead: RwLock<Option<OverheadStatus>>,
}

impl StatusBoard {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            rows: RwLock::new(Vec::new()),
            details: RwLock::new(BTreeMap::new()),
            overhead: RwLock::new(None),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Replaces the rows (the supervisor, after each change).
    pub fn publish_rows(&self, rows: Vec<ActorStatus>) {
        *self.rows.write().unwrap_or_else(|e| e.into_inner()) = rows;
    }

    pub fn set_detail(&self, part: &str, detail: PartDetail) {
        self.details
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(part.to_string(), detail);
    }

    pub fn detail(&self, part: &str) -> Option<PartDetail> {
        self.details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(part)
            .cloned()
    }

    pub fn set_overhead(&self, overhead: Option<OverheadStatus>) {
        *self.overhead.write().unwrap_or_else(|e| e.into_inner()) = overhead;
    }

    pub fn overhead(&self) -> Option<OverheadStatus> {
        self.overhead
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The agent's status now.
    pub fn status(&self) -> AgentStatus {
        let overhead = self.overhead();
        let divisor_of = |name: &str| {
            overhead.as_ref().and_then(|o| {
                o.probes
                    .iter()
                    .find(|p| p.probe == name)
                    .and_then(|p| p.sampling_divisor)
            })
        };
        let details = self.details.read().unwrap_or_else(|e| e.into_inner());
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let actors: Vec<ActorStatus> = rows
            .iter()
            .map(|row| {
                let report = details.get(&row.name).cloned();
                ActorStatus {
                    uptime_secs: match row.state {
                        ChildState::Running | ChildState::Inactive => {
                            row.started_at.map(|t| t.elapsed().as_secs())
                        }
                        _ => None,
                    },
                    sampling_divisor: divisor_of(&row.name),
                    detail: report.as_ref().map(PartDetail::summary),
                    report,
                    ..row.clone()
                }
            })
            .collect();
        AgentStatus {
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs: self.started.elapsed().as_secs(),
            // Before the supervisor's first publication nothing has started.
            ready: !actors.is_empty() && actors.iter().all(|a| a.state.is_ready(a.kind)),
            actors,
            overhead,
        }
    }
}

/// The sampler's view, shown by `ctl status` (and `GET /tracers` through the status).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OverheadStatus {
    pub budget_ratio: f64,
    /// Agent CPU + BPF run time over the last round, as a fraction of host CPU.
    pub overhead_ratio: f64,
    /// Of which the agent process's own CPU time.
    pub agent_cpu_ratio: f64,
    /// Of which BPF program run time.
    pub bpf_ratio: f64,
    /// False when bpf_stats is off: BPF run time is then not seen.
    pub bpf_stats: bool,
    pub probes: Vec<ProbeOverhead>,
    /// Latest decisions, newest last.
    pub decisions: Vec<DecisionRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeOverhead {
    pub probe: String,
    pub overhead_ratio: f64,
    /// Keep 1 event in N; `None` = the probe has no sampling knob.
    pub sampling_divisor: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Throttle,
    Relax,
}

/// One sampling decision of the control law.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub probe: String,
    pub action: Action,
    pub from: u32,
    pub to: u32,
    /// Total overhead that led to the decision.
    pub overhead_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// Unix seconds.
    pub at: u64,
    #[serde(flatten)]
    pub decision: Decision,
}
