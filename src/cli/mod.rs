//! Command-line clients of a running agent.

pub mod events;
