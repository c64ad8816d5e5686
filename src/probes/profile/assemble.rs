//! Raw kernel aggregates plus their symbolised frames → a [`Profile`] with container labels.

use std::collections::HashMap;
use std::sync::Arc;

use crate::containers::{Container, ContainerSet};
use crate::profiling::{Frame, Profile, ProfileKind, SampleLabels, StackSample};

use super::session::RawSample;

/// Kernel frames of the tracing machinery above the traced function (the BPF program,
/// `bpf_trace_run<N>`, `__bpf_trace_*`, `__traceiter_*`, perf's overflow path of the sampler).
fn is_tracing_frame(frame: &Frame) -> bool {
    frame.kernel
        && [
            "bpf_prog_",
            "bpf_trace_run",
            "__bpf_trace_",
            "__traceiter_",
            "bpf_trampoline_",
        ]
        .iter()
        .any(|p| frame.function.starts_with(p))
}

/// What a window or capture was.
#[derive(Debug, Clone)]
pub struct WindowMeta {
    pub kind: ProfileKind,
    pub start_unix_ns: u64,
    pub duration_ns: u64,
    pub frequency_hz: u32,
    pub host: String,
}

/// The profile of `meta.kind` from `raw` and the frames of each (same order); tasks are
/// attributed to the container whose cgroup id (`key`: the cpu css id on v1 hosts, the default
/// hierarchy id on v2) the kernel recorded.
pub fn assemble(
    meta: &WindowMeta,
    raw: &[RawSample],
    frames: Vec<Vec<Frame>>,
    containers: &ContainerSet,
    key: fn(&Container) -> u64,
) -> Profile {
    let by_key: HashMap<u64, &Arc<Container>> = containers.iter().map(|c| (key(c), c)).collect();
    let period_ns = match (meta.kind, meta.frequency_hz) {
        (ProfileKind::Cpu, hz) if hz > 0 => 1_000_000_000 / u64::from(hz),
        _ => 0,
    };
    let samples = raw
        .iter()
        .zip(frames)
        .filter(|(r, _)| r.kind == meta.kind && r.count > 0)
        .map(|(r, frames)| {
            let container = by_key.get(&r.cgroup);
            StackSample {
                frames: frames
                    .into_iter()
                    .filter(|f| !is_tracing_frame(f))
                    .collect(),
                labels: SampleLabels {
                    pid: r.tgid,
                    comm: r.comm.clone(),
                    container_id: container.map(|c| c.id.clone()),
                    container_name: container.map(|c| c.name.clone()),
                    pod: container.and_then(|c| c.pod.as_ref().map(|p| p.name.clone())),
                },
                count: r.count,
                value_ns: match meta.kind {
                    ProfileKind::Cpu => r.count.saturating_mul(period_ns),
                    ProfileKind::OffCpu => r.value_ns,
                },
            }
        })
        .collect();
    Profile {
        kind: meta.kind,
        start_unix_ns: meta.start_unix_ns,
        duration_ns: meta.duration_ns,
        frequency_hz: if meta.kind == ProfileKind::Cpu {
            meta.frequency_hz
        } else {
            0
        },
        host: meta.host.clone(),
        samples,
    }
}

pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
