//! The kernel's record of one long tick interval (`struct tick_event` of sched_tick.bpf.c) and
//! what it becomes in a document: upstream's `SchedTickTracingData` fields.

use serde::Serialize;

use crate::probes::common::event_ring::{comm_at, u32_at, u64_at};
use crate::probes::common::ksyms::Symbolizer;

/// Frames the kernel sends at most (`STACK_DEPTH` of the C side).
pub const STACK_DEPTH: usize = 64;

/// One `struct tick_event`: a fixed header, then `stack_bytes` of return addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecord {
    pub boot_ns: u64,
    pub interval_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub comm: String,
    /// Kernel return addresses, innermost first.
    pub stack: Vec<u64>,
}

impl TickRecord {
    /// Bytes before the stack frames.
    pub const HEADER: usize = 48;

    /// Rejects a record shorter than its header, a `stack_bytes` that is not whole frames or
    /// beyond `STACK_DEPTH`, or a record shorter than the frames it announces.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::HEADER {
            return None;
        }
        let stack_bytes = u32_at(b, 28)? as usize;
        if !stack_bytes.is_multiple_of(8) || stack_bytes > STACK_DEPTH * 8 {
            return None;
        }
        let frames = b.get(Self::HEADER..Self::HEADER + stack_bytes)?;
        let stack = frames
            .chunks_exact(8)
            .map(|f| u64_at(f, 0))
            .collect::<Option<Vec<u64>>>()?;
        Some(Self {
            boot_ns: u64_at(b, 0)?,
            interval_ns: u64_at(b, 8)?,
            pid: u32_at(b, 16)?,
            tid: u32_at(b, 20)?,
            cpu: u32_at(b, 24)?,
            comm: comm_at(b, 32)?,
            stack,
        })
    }

    /// The document's `tracer_data`, with the stack resolved by `symbolizer` (which must have
    /// resolved `self.stack` already).
    pub fn data(&self, threshold_ns: u64, symbolizer: &Symbolizer) -> SchedTickData {
        SchedTickData {
            tick_interval_ns: self.interval_ns,
            tick_interval_threshold_ns: threshold_ns,
            comm: self.comm.clone(),
            pid: self.pid,
            cpu: self.cpu,
            stack: stack_text(&symbolizer.stack(&self.stack)),
            tid: self.tid,
        }
    }
}

/// Upstream's `stack` text: `stack:\n` then one frame a line (`stack:\n` alone when the kernel
/// could not take the stack).
pub fn stack_text(frames: &str) -> String {
    format!("stack:\n{frames}")
}

/// `tracer_data` of a `sched_tick` document: upstream's names and types (`SchedTickTracingData`,
/// core/events/sched_tick.go), plus ours `tid`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedTickData {
    /// The interval between this tick and the CPU's previous one.
    pub tick_interval_ns: u64,
    pub tick_interval_threshold_ns: u64,
    /// The task the tick interrupted (the one that ran, or held interrupts off, meanwhile).
    pub comm: String,
    /// Its tgid, as upstream.
    pub pid: u32,
    pub cpu: u32,
    pub stack: String,
    pub tid: u32,
}
