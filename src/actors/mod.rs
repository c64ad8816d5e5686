//! Actors of the agent besides the root supervisor: the shared probe actor, the HTTP exporter,
//! container discovery, the event store sink, the adaptive sampler, the
//! Pyroscope pusher and the control socket. See docs/architecture.md for the tree.

pub mod containers;
pub mod control;
pub mod elasticsearch;
pub mod event_store;
pub mod http;
pub mod open_when_free;
pub mod probe;
pub mod pyroscope;
pub mod sampler;
pub mod server_task;
