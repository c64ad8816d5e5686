//! Command-line clients of a running agent.

pub mod ctl;
pub mod events;
