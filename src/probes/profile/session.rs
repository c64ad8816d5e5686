//! One loaded profile object: the perf events (on-CPU) and/or the scheduler programs (off-CPU)
//! attached with their kernel-side filters, and reading the double-buffered counts.

use std::time::Duration;

use aya::maps::{HashMap as BpfHashMap, MapData, StackTraceMap};

use crate::core::capture::OffCpuPhase;
use crate::core::probe::ProbeError;
use crate::ebpf::{self, Attachment, BpfError, BpfProgramSet, Hook};
use crate::profiling::ProfileKind;

use super::NAME;

const COUNTS: [&str; 2] = ["PROFILE_COUNTS_0", "PROFILE_COUNTS_1"];
const STACKS: [&str; 2] = ["PROFILE_STACKS_0", "PROFILE_STACKS_1"];
const LIVE_MAP: &str = "PROFILE_LIVE";
const STATS_MAP: &str = "PROFILE_STATS";
/// Programs running when the live buffer flips finish within microseconds (they run with
/// preemption off); this is far beyond that.
const FLIP_GRACE: Duration = Duration::from_millis(20);

/// `struct sample_key` of profile.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub tgid: u32,
    pub pid: u32,
    pub user_stack: i32,
    pub kernel_stack: i32,
    pub cgroup: u64,
    pub kind: u32,
    pub pad: u32,
}

/// `struct sample_value` of profile.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SampleValue {
    pub count: u64,
    pub value_ns: u64,
    pub comm: [u8; 16],
}

// SAFETY: plain integers, `repr(C)`, no padding (4*4 + 8 + 4*2 = 32 bytes; 8 + 8 + 16 = 32).
unsafe impl aya::Pod for SampleKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SampleValue {}

/// One aggregated stack of one task as the kernel counted it, with its raw addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    pub kind: ProfileKind,
    pub tgid: u32,
    pub pid: u32,
    pub cgroup: u64,
    pub comm: String,
    pub count: u64,
    pub value_ns: u64,
    /// Leaf first.
    pub user: Vec<u64>,
    pub kernel: Vec<u64>,
}

/// Kernel-side counters (PROFILE_STATS), cumulative since load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub samples: u64,
    pub lost_map_full: u64,
    pub lost_stacks: u64,
    pub offcpu_episodes: u64,
}

/// What to attach and how to filter.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    /// On-CPU sampling frequency; `None` = no perf events.
    pub cpu_hz: Option<u32>,
    /// Off-CPU phase; `None` = no scheduler programs.
    pub offcpu: Option<OffCpuPhase>,
    pub tgid: u32,
    pub cgroup: u64,
    pub kernel_only: bool,
    pub key_by_cpu_css: bool,
    pub min_block_us: u64,
    /// Distinct stacks each buffer holds (count map and stack map entries).
    pub max_stacks: u32,
}

pub struct Session {
    pub programs: BpfProgramSet,
    live: u32,
    offcpu: bool,
}

impl Session {
    pub fn start(spec: &SessionSpec) -> Result<Self, ProbeError> {
        let sizes: Vec<(&str, u32)> = COUNTS
            .iter()
            .chain(STACKS.iter())
            .map(|m| (*m, spec.max_stacks.max(64)))
            .collect();
        let bpf = ebpf::load_sized(
            NAME,
            crate::bpf_object!("profile"),
            &[
                ("filter_tgid", spec.tgid),
                ("kernel_only", spec.kernel_only as u32),
                ("key_by_cpu_css", spec.key_by_cpu_css as u32),
                ("offcpu_phase", spec.offcpu.unwrap_or_default().code()),
            ],
            &[
                ("filter_cgroup", spec.cgroup),
                ("min_block_ns", spec.min_block_us.saturating_mul(1000)),
            ],
            &sizes,
        )?;
        let attachments = attachments(spec)?;
        let programs = BpfProgramSet::attach(NAME, bpf, &attachments)?;
        Ok(Self {
            programs,
            live: 0,
            offcpu: spec.offcpu.is_some(),
        })
    }

    /// The scheduler programs are attached (off-CPU samples come too).
    pub fn has_offcpu(&self) -> bool {
        self.offcpu
    }

    /// Reads the counters of PROFILE_STATS summed over CPUs.
    pub fn stats(&self) -> Result<SessionStats, BpfError> {
        let slot = |i| self.programs.per_cpu_sum(STATS_MAP, i);
        Ok(SessionStats {
            samples: slot(0)?,
            lost_map_full: slot(1)?,
            lost_stacks: slot(2)?,
            offcpu_episodes: slot(3)?,
        })
    }

    /// Makes the other buffer live, waits for programs still writing the old one, then reads
    /// and clears the old one: nothing is lost while reading.
    pub fn flip_and_drain(&mut self) -> Result<Vec<RawSample>, BpfError> {
        let old = self.live;
        let new = 1 - old;
        self.programs.set_u32(LIVE_MAP, 0, new)?;
        self.live = new;
        std::thread::sleep(FLIP_GRACE);
        self.drain(old as usize)
    }

    fn drain(&mut self, buffer: usize) -> Result<Vec<RawSample>, BpfError> {
        let err = |map: &'static str| {
            move |e: aya::maps::MapError| BpfError::MapRead {
                probe: NAME,
                map,
                reason: e.to_string(),
            }
        };
        let (counts_name, stacks_name) = (COUNTS[buffer], STACKS[buffer]);
        let bpf = self.programs.ebpf_mut();
        let mut entries = Vec::new();
        {
            let data = bpf.map_mut(counts_name).ok_or(BpfError::MissingMap {
                probe: NAME,
                map: counts_name,
            })?;
            let mut counts = BpfHashMap::<&mut MapData, SampleKey, SampleValue>::try_from(data)
                .map_err(err(counts_name))?;
            let keys: Vec<SampleKey> = counts.keys().filter_map(Result::ok).collect();
            for key in keys {
                if let Ok(value) = counts.get(&key, 0) {
                    entries.push((key, value));
                }
                let _ = counts.remove(&key);
            }
        }
        let data = bpf.map_mut(stacks_name).ok_or(BpfError::MissingMap {
            probe: NAME,
            map: stacks_name,
        })?;
        let mut stacks = StackTraceMap::<&mut MapData>::try_from(data).map_err(err(stacks_name))?;
        let mut frames = std::collections::HashMap::<i32, Vec<u64>>::new();
        let mut read = |id: i32| -> Vec<u64> {
            if id < 0 {
                return Vec::new();
            }
            frames
                .entry(id)
                .or_insert_with(|| {
                    stacks
                        .get(&(id as u32), 0)
                        .map(|st| st.frames().iter().map(|f| f.ip).collect())
                        .unwrap_or_default()
                })
                .clone()
        };
        let samples: Vec<RawSample> = entries
            .into_iter()
            .map(|(key, value)| RawSample {
                kind: if key.kind == 1 {
                    ProfileKind::OffCpu
                } else {
                    ProfileKind::Cpu
                },
                tgid: key.tgid,
                pid: key.pid,
                cgroup: key.cgroup,
                comm: comm(&value.comm),
                count: value.count,
                value_ns: value.value_ns,
                user: read(key.user_stack),
                kernel: read(key.kernel_stack),
            })
            .collect();
        let ids: Vec<u32> = stacks.stack_ids().filter_map(Result::ok).collect();
        for id in ids {
            let _ = stacks.remove(&id);
        }
        Ok(samples)
    }
}

/// The task name of a kernel `comm` buffer (NUL-terminated).
pub fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn attachments(spec: &SessionSpec) -> Result<Vec<Attachment>, ProbeError> {
    let mut attachments = Vec::new();
    if let Some(hz) = spec.cpu_hz {
        let cpus = aya::util::online_cpus().map_err(|(path, source)| ProbeError::Read {
            probe: NAME,
            path: path.to_string(),
            source,
        })?;
        for cpu in cpus {
            attachments.push(Attachment {
                program: "on_cpu_clock",
                hook: Hook::PerfCpuClock {
                    cpu,
                    frequency_hz: u64::from(hz),
                },
            });
        }
    }
    if let Some(phase) = spec.offcpu {
        attachments.push(Attachment {
            program: "on_sched_switch",
            hook: Hook::TpBtf("sched_switch"),
        });
        // Blocking ends at the wakeup: only the split phases need it.
        if phase != OffCpuPhase::All {
            attachments.push(Attachment {
                program: "on_sched_wakeup",
                hook: Hook::TpBtf("sched_wakeup"),
            });
        }
    }
    Ok(attachments)
}
