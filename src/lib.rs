//! huatuo-bamai: HUATUO's node agent in Rust. An actor tree (ractor) of supervised probes that
//! turn kernel tracepoints (eBPF, aya) and procfs into Prometheus metrics, served on :19704 and
//! controlled live through a Unix socket. See docs/architecture.md.

pub mod actors;
pub mod autotracing;
pub mod cli;
pub mod config;
pub mod containers;
pub mod core;
pub mod ebpf;
pub mod events;
pub mod exposition;
pub mod probes;
pub mod profiling;
pub mod registry;
pub mod supervisor;
pub mod telemetry;
