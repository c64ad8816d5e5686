//! The shared vocabulary at the bottom of the agent: the probe contract, the messages between
//! the supervisor and its parts, the context handed to them, the part registry entry and the
//! status types. The supervisor, the actors and the probes depend on it; it depends on none of
//! them (only on the libraries below: config, ebpf, exposition, events, containers, telemetry).

pub mod capture;
pub mod context;
pub mod control_protocol;
pub mod errors;
pub mod messages;
pub mod part;
pub mod probe;
pub mod status;

pub use capture::{CaptureSlot, ProfileCapturer};
pub use context::AgentContext;
pub use errors::ControlError;
pub use messages::{ControlCommand, ProbeCost, ProbeMsg, ProbeReport, SupervisorMsg};
pub use part::{PartArgs, PartEntry, SpawnFuture, Spawned};
pub use probe::{Probe, ProbeContext, ProbeError, ProbeSettings};
pub use status::{ActorStatus, AgentStatus, ChildState, PartDetail, PartKind, StatusBoard};
