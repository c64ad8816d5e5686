//! Probes: one folder each (`mod.rs` with the probe and its config section, `<name>.bpf.c`,
//! `tests.rs`). A probe implements [`crate::core::Probe`]; the shared probe actor
//! (`actors::probe`) gives it supervision, ticking, BPF link watching and cost reporting.
//! Registering a probe is one line in `crate::registry` (see docs/adding-a-probe.md).

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
