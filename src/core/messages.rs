//! Typed messages between the supervisor and its parts.

use std::time::Duration;

use ractor::{ActorId, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::errors::ControlError;
use super::status::AgentStatus;
use crate::config::Config;
use crate::ebpf::ProgramCost;

/// Messages every probe actor understands.
pub enum ProbeMsg {
    /// Collect now and check kernel attachments (sent by the probe's own interval timer).
    Tick,
    /// What the probe has cost so far and how it is sampled (input of adaptive sampling).
    Cost(RpcReplyPort<ProbeCost>),
    /// Adaptive sampling: keep 1 event in N (1 = every event). Probes without a knob ignore it.
    SetSampling(u32),
    /// Next slot of a duty cycle (sampling beyond 1-in-1024): attach or detach the programs.
    DutySlot,
}

/// Cumulative cost of one probe, read by the sampler every round.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeCost {
    /// Run count / run time of each BPF program since load (bpf_stats).
    pub programs: Vec<ProgramCost>,
    /// Time spent in this actor's ticks (collect, ring drain, link checks) since it started.
    pub collect_time: Duration,
    /// BPF run time of programs outside `programs`: on-demand captures (profile, iotracing),
    /// loaded for a window and gone after it, added when each window ends. Cumulative.
    pub capture_bpf_time: Duration,
    /// The sampling divisor in force; `None` when the probe cannot be throttled.
    pub sampling_divisor: Option<u32>,
}

/// What a probe actor tells its supervisor about itself.
#[derive(Debug, Clone)]
pub enum ProbeReport {
    Running,
    Inactive(String),
    Reattached(Vec<String>),
}

/// An operator's request, applied by the supervisor as one message (two concurrent edits
/// cannot lose one another).
#[derive(Debug, Clone)]
pub enum ControlCommand {
    /// Set one dotted key (validated; on error the running configuration stays).
    Set { key: String, value: String },
    /// Set several dotted keys at once (`PUT /config`): all are applied or none.
    SetMany(Vec<(String, String)>),
    /// Re-read the configuration source and apply what changed.
    Reload,
    /// Start a probe (its `enabled` key) or retry a failed service.
    Enable(String),
    /// Stop a probe.
    Disable(String),
    /// Fault injection: kill a part as if it crashed.
    Kill(String),
    /// Apply a whole configuration (tests, programmatic control).
    Apply(Box<Config>),
}

pub enum SupervisorMsg {
    ProbeReport {
        actor: ActorId,
        report: ProbeReport,
    },
    /// A backoff timer expired; `generation` guards against stale timers.
    RestartDue {
        name: String,
        generation: u64,
    },
    /// The status now (also on the status board, which needs no round trip).
    Status(RpcReplyPort<AgentStatus>),
    /// Probe actors that are running now (the sampler asks for their costs).
    RunningProbes(RpcReplyPort<Vec<(String, ActorRef<ProbeMsg>)>>),
    CurrentConfig(RpcReplyPort<Config>),
    /// Replies with the actions taken.
    Control(
        ControlCommand,
        RpcReplyPort<Result<Vec<String>, ControlError>>,
    ),
}
