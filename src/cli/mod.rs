//! Command-line clients of a running agent.

pub mod ctl;
pub mod events;
pub mod profile;
pub mod upstream_flags;
