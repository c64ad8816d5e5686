//! Shared BPF machinery: load an embedded object with the kernel's BTF, attach its programs by a
//! declarative list of hooks, watch the links and re-attach what was detached from outside, and
//! read each program's run time and count (bpf_stats). Probes only declare *what* to attach.

mod errors;
pub mod histogram;
mod kernelfs;

use std::time::Duration;

use aya::programs::{links::FdLink, Program};
use aya::{Btf, Ebpf, EbpfLoader};

pub use errors::{classify_attach_error, classify_load_error, BpfError};
pub use kernelfs::{ensure_kernel_filesystems, KernelFsReport};

/// Path of the running kernel's BTF; CO-RE and tp_btf need it.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Embeds a BPF object built by `build.rs` from `src/probes/<probe>/<name>.bpf.c`.
#[macro_export]
macro_rules! bpf_object {
    ($name:literal) => {
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $name, ".bpf.o"))
    };
}

/// A kernel hook one program attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// BTF-typed raw tracepoint (`SEC("tp_btf/<name>")`): cheapest for hot events, no tracefs.
    TpBtf(&'static str),
    /// Raw tracepoint (`SEC("raw_tp/<name>")`).
    RawTp(&'static str),
    /// Classic tracepoint (`SEC("tracepoint/<category>/<name>")`); needs tracefs.
    TracePoint {
        category: &'static str,
        name: &'static str,
    },
    /// Kernel function entry via kprobe (`SEC("kprobe/<fn>")`): a fallback for older kernels;
    /// `unsupported` where CONFIG_KPROBES is off.
    KProbe(&'static str),
    /// Kernel function entry via fentry (`SEC("fentry/<fn>")`): `unsupported` where the
    /// trampoline is forbidden (ftrace locked).
    FEntry(&'static str),
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::TpBtf(name) => write!(f, "tp_btf/{name}"),
            Hook::RawTp(name) => write!(f, "raw_tp/{name}"),
            Hook::TracePoint { category, name } => write!(f, "tracepoint/{category}/{name}"),
            Hook::KProbe(function) => write!(f, "kprobe/{function}"),
            Hook::FEntry(function) => write!(f, "fentry/{function}"),
        }
    }
}

/// One program of an object and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Attachment {
    /// C function name of the program.
    pub program: &'static str,
    pub hook: Hook,
}

/// Run-time cost of one program since it was loaded (needs bpf_stats enabled).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub run_count: u64,
    pub run_time: Duration,
}

struct AttachedProgram {
    attachment: Attachment,
    link: Option<FdLink>,
    /// Kernel id of the link, to tell our link from whatever later reuses its fd number.
    link_id: u32,
}

/// A loaded BPF object with its attached programs. Dropping it detaches everything.
pub struct BpfProgramSet {
    probe: &'static str,
    bpf: Ebpf,
    attached: Vec<AttachedProgram>,
    /// Adaptive sampling in force; `None` when the object declares no knob.
    sampling: Option<Sampling>,
}

/// The map `HUATUO_SAMPLING_KNOB` (huatuo.h) declares: one `struct huatuo_sampling`.
pub const SAMPLING_MAP: &str = "HUATUO_SAMPLING";
/// Largest 1-in-N the programs sample events at; a larger divisor also duty-cycles the links
/// (attached one slot in `divisor / MAX_EVENT_DIVISOR`): below this the programs' own fixed
/// cost per event is what is left, which only not running them removes.
pub const MAX_EVENT_DIVISOR: u32 = 1024;

/// Length of one duty-cycle slot for a cycle of `duty` slots: the cycle spans one second when it
/// can, so every second (the sampler's round) holds one attached slot and the overhead is even
/// from second to second; slots never get shorter than 50 ms (two attach syscalls per cycle).
pub fn duty_slot(duty: u32) -> Duration {
    Duration::from_millis((1000 / u64::from(duty.max(1))).max(50))
}

/// `struct huatuo_sampling` of huatuo.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SamplingKnob {
    divisor: u32,
    weight: u32,
    since_ns: u64,
}

// SAFETY: plain integers, `repr(C)` with no padding (4 + 4 + 8 bytes).
unsafe impl aya::Pod for SamplingKnob {}

/// Adaptive-sampling state of a program set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sampling {
    /// Overall divisor: events 1-in-`event` × attached one slot in `duty`.
    divisor: u32,
    duty: u32,
    /// Slots since the duty cycle started.
    ticks: u64,
    /// Links dropped for the current off-slots of the duty cycle.
    paused: bool,
}

/// The running kernel's BTF, parsed once per process (parsing takes tens of milliseconds and
/// every probe needs it for CO-RE and tp_btf).
fn kernel_btf(probe: &'static str) -> Result<&'static Btf, BpfError> {
    static KERNEL_BTF_PARSED: std::sync::OnceLock<Btf> = std::sync::OnceLock::new();
    if let Some(btf) = KERNEL_BTF_PARSED.get() {
        return Ok(btf);
    }
    let btf = Btf::from_sys_fs().map_err(|source| BpfError::Btf { probe, source })?;
    Ok(KERNEL_BTF_PARSED.get_or_init(|| btf))
}

/// Loads `object` (an embedded `.bpf.o`) for `probe`, with kernel BTF for CO-RE relocations.
/// `globals` sets `const volatile` variables in `.rodata` before load.
pub fn load(probe: &'static str, object: &[u8], globals: &[(&str, u32)]) -> Result<Ebpf, BpfError> {
    if !std::path::Path::new(KERNEL_BTF).exists() {
        return Err(BpfError::Unsupported {
            probe,
            reason: format!("kernel BTF missing ({KERNEL_BTF}); a kernel with CONFIG_DEBUG_INFO_BTF=y is required"),
        });
    }
    let btf = kernel_btf(probe)?;
    let mut loader = EbpfLoader::new();
    loader.btf(Some(btf));
    // Kernel-only maps user space never reads (task local storage) are still created.
    loader.allow_unsupported_maps();
    for (name, value) in globals {
        loader.override_global(name, value, true);
    }
    loader
        .load(object)
        .map_err(|error| classify_load_error(probe, error))
}

impl BpfProgramSet {
    /// Loads and attaches every program in `attachments`. A hook the kernel lacks yields
    /// `BpfError::Unsupported`, any other failure `BpfError::Attach`.
    pub fn attach(
        probe: &'static str,
        mut bpf: Ebpf,
        attachments: &[Attachment],
    ) -> Result<Self, BpfError> {
        let btf = kernel_btf(probe)?;
        let mut attached = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let link = attach_one(probe, &mut bpf, btf, attachment, true)?;
            let link_id = link_id(probe, attachment, &link)?;
            attached.push(AttachedProgram {
                attachment: *attachment,
                link: Some(link),
                link_id,
            });
        }
        let sampling = bpf.map(SAMPLING_MAP).map(|_| Sampling {
            divisor: 1,
            duty: 1,
            ticks: 0,
            paused: false,
        });
        Ok(Self {
            probe,
            bpf,
            attached,
            sampling,
        })
    }

    /// The adaptive-sampling divisor in force (1 = every event), or `None` when the probe's
    /// programs cannot be throttled.
    pub fn sampling_divisor(&self) -> Option<u32> {
        self.sampling.map(|s| s.divisor)
    }

    /// Sets the adaptive-sampling divisor. Up to [`MAX_EVENT_DIVISOR`] the programs keep 1 event
    /// in `divisor`; beyond it they also run only one tick in `divisor / MAX_EVENT_DIVISOR`
    /// ([`BpfProgramSet::duty_cycle_tick`]). A kept event counts for the whole divisor.
    pub fn set_sampling_divisor(&mut self, divisor: u32) -> Result<(), BpfError> {
        let Some(mut sampling) = self.sampling else {
            return Err(BpfError::MissingMap {
                probe: self.probe,
                map: SAMPLING_MAP,
            });
        };
        let divisor = divisor.max(1);
        let event = divisor.min(MAX_EVENT_DIVISOR);
        let duty = divisor.div_ceil(event).max(1);
        // Begins taken under the old weight would be counted with the new one: void them.
        let knob = SamplingKnob {
            divisor: event,
            weight: event.saturating_mul(duty),
            since_ns: monotonic_ns(),
        };
        self.write_knob(knob)?;
        sampling.divisor = knob.weight;
        sampling.duty = duty;
        sampling.ticks = 0;
        self.sampling = Some(sampling);
        if duty == 1 && sampling.paused {
            // On failure, leave the links to the link watcher rather than detached for good.
            if let Err(e) = self.resume() {
                self.set_paused(false);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The duty cycle in force: attached one slot in K (1 = always attached).
    pub fn duty(&self) -> u32 {
        self.sampling.map_or(1, |s| s.duty)
    }

    /// Called every duty slot ([`duty_slot`]): with a duty cycle, the programs stay attached one
    /// slot in `duty` and are detached for the others (no cost at all then).
    pub fn duty_cycle_tick(&mut self) -> Result<(), BpfError> {
        let Some(mut sampling) = self.sampling else {
            return Ok(());
        };
        if sampling.duty <= 1 {
            return Ok(());
        }
        sampling.ticks += 1;
        let on = sampling.ticks % u64::from(sampling.duty) == 0;
        self.sampling = Some(sampling);
        match (on, sampling.paused) {
            (true, true) => self.resume(),
            (false, false) => {
                for attached in &mut self.attached {
                    // Closing a tracepoint link's fd detaches it.
                    drop(attached.link.take());
                }
                self.set_paused(true);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// True while a duty cycle holds the programs detached.
    pub fn paused(&self) -> bool {
        self.sampling.is_some_and(|s| s.paused)
    }

    fn set_paused(&mut self, paused: bool) {
        if let Some(sampling) = self.sampling.as_mut() {
            sampling.paused = paused;
        }
    }

    /// Re-attaches after a duty-cycle pause; begins taken before it are void from now on.
    fn resume(&mut self) -> Result<(), BpfError> {
        let mut knob = self.read_knob()?;
        knob.since_ns = monotonic_ns();
        self.write_knob(knob)?;
        let btf = kernel_btf(self.probe)?;
        for attached in &mut self.attached {
            if attached.link.is_none() {
                let link = attach_one(self.probe, &mut self.bpf, btf, &attached.attachment, false)?;
                attached.link_id = link_id(self.probe, &attached.attachment, &link)?;
                attached.link = Some(link);
            }
        }
        self.set_paused(false);
        Ok(())
    }

    fn knob_map(
        &mut self,
    ) -> Result<aya::maps::Array<&mut aya::maps::MapData, SamplingKnob>, BpfError> {
        let probe = self.probe;
        let data = self.bpf.map_mut(SAMPLING_MAP).ok_or(BpfError::MissingMap {
            probe,
            map: SAMPLING_MAP,
        })?;
        aya::maps::Array::try_from(data).map_err(|e| BpfError::MapRead {
            probe,
            map: SAMPLING_MAP,
            reason: e.to_string(),
        })
    }

    fn read_knob(&mut self) -> Result<SamplingKnob, BpfError> {
        let probe = self.probe;
        self.knob_map()?.get(&0, 0).map_err(|e| BpfError::MapRead {
            probe,
            map: SAMPLING_MAP,
            reason: e.to_string(),
        })
    }

    fn write_knob(&mut self, knob: SamplingKnob) -> Result<(), BpfError> {
        let probe = self.probe;
        self.knob_map()?
            .set(0, knob, 0)
            .map_err(|e| BpfError::MapRead {
                probe,
                map: SAMPLING_MAP,
                reason: e.to_string(),
            })
    }

    pub fn ebpf(&self) -> &Ebpf {
        &self.bpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.bpf
    }

    /// Per-CPU values of `index` in the `u64` per-CPU array `map` (one entry per possible CPU).
    pub fn per_cpu_u64(&self, map: &'static str, index: u32) -> Result<Vec<u64>, BpfError> {
        let probe = self.probe;
        let data = self
            .bpf
            .map(map)
            .ok_or(BpfError::MissingMap { probe, map })?;
        let read_err = |e: aya::maps::MapError| BpfError::MapRead {
            probe,
            map,
            reason: e.to_string(),
        };
        let array =
            aya::maps::PerCpuArray::<&aya::maps::MapData, u64>::try_from(data).map_err(read_err)?;
        let values = array.get(&index, 0).map_err(read_err)?;
        Ok(values.iter().copied().collect())
    }

    /// A kernel log2 histogram stored in the per-CPU `u64` array `map` from index `base`:
    /// LOG2_SLOTS slot counters followed by the sum of values in ns.
    pub fn log2_histogram(
        &self,
        map: &'static str,
        base: u32,
    ) -> Result<histogram::Log2Histogram, BpfError> {
        let total = |index: u32| -> Result<u64, BpfError> {
            Ok(self
                .per_cpu_u64(map, index)?
                .iter()
                .fold(0u64, |a, v| a.wrapping_add(*v)))
        };
        let mut slots = Vec::with_capacity(histogram::LOG2_SLOTS);
        for slot in 0..histogram::LOG2_SLOTS as u32 {
            slots.push(total(base + slot)?);
        }
        let sum_ns = total(base + histogram::LOG2_SLOTS as u32)?;
        Ok(histogram::Log2Histogram { slots, sum_ns })
    }

    /// Writes `value` at `index` of the `u32` array `map` (a switch or knob the programs read).
    pub fn set_u32(&mut self, map: &'static str, index: u32, value: u32) -> Result<(), BpfError> {
        let probe = self.probe;
        let data = self
            .bpf
            .map_mut(map)
            .ok_or(BpfError::MissingMap { probe, map })?;
        let err = |e: aya::maps::MapError| BpfError::MapRead {
            probe,
            map,
            reason: e.to_string(),
        };
        let mut array =
            aya::maps::Array::<&mut aya::maps::MapData, u32>::try_from(data).map_err(err)?;
        array.set(index, value, 0).map_err(err)
    }

    /// Makes the `u64 -> u8` hash `map` hold exactly `wanted` (e.g. the container cgroup ids a
    /// probe should count per container). Only differences are written.
    pub fn sync_key_set(
        &mut self,
        map: &'static str,
        wanted: &std::collections::HashSet<u64>,
    ) -> Result<(), BpfError> {
        let probe = self.probe;
        let err = |e: aya::maps::MapError| BpfError::MapRead {
            probe,
            map,
            reason: e.to_string(),
        };
        let data = self
            .bpf
            .map_mut(map)
            .ok_or(BpfError::MissingMap { probe, map })?;
        let mut set =
            aya::maps::HashMap::<&mut aya::maps::MapData, u64, u8>::try_from(data).map_err(err)?;
        let present: std::collections::HashSet<u64> = set.keys().filter_map(Result::ok).collect();
        for stale in present.difference(wanted) {
            let _ = set.remove(stale);
        }
        for new in wanted.difference(&present) {
            set.insert(new, 1, 0).map_err(err)?;
        }
        Ok(())
    }

    /// Sums over CPUs the `[u64; N]` value of every key of the per-CPU hash `map`, and deletes
    /// keys not in `keep` (state of containers that are gone).
    pub fn per_cpu_hash_sums<const N: usize>(
        &mut self,
        map: &'static str,
        keep: &std::collections::HashSet<u64>,
    ) -> Result<std::collections::HashMap<u64, [u64; N]>, BpfError> {
        let probe = self.probe;
        let err = |e: aya::maps::MapError| BpfError::MapRead {
            probe,
            map,
            reason: e.to_string(),
        };
        let data = self
            .bpf
            .map_mut(map)
            .ok_or(BpfError::MissingMap { probe, map })?;
        let mut hash =
            aya::maps::PerCpuHashMap::<&mut aya::maps::MapData, u64, [u64; N]>::try_from(data)
                .map_err(err)?;
        let mut sums = std::collections::HashMap::new();
        let mut stale = Vec::new();
        for entry in hash.iter() {
            let (key, per_cpu) = entry.map_err(err)?;
            if !keep.contains(&key) {
                stale.push(key);
                continue;
            }
            let mut total = [0u64; N];
            for values in per_cpu.iter() {
                for (slot, value) in total.iter_mut().zip(values.iter()) {
                    *slot = slot.wrapping_add(*value);
                }
            }
            sums.insert(key, total);
        }
        for key in stale {
            let _ = hash.remove(&key);
        }
        Ok(sums)
    }

    /// Kernel link ids, in attachment order (for tests and `ctl status`).
    pub fn link_ids(&self) -> Vec<u32> {
        self.attached.iter().map(|a| a.link_id).collect()
    }

    /// Re-attaches every program whose link is gone. Tracepoint links cannot be detached with
    /// `BPF_LINK_DETACH` (EOPNOTSUPP), so "gone" means the link fd was closed from outside (the
    /// kernel then releases the link) or no longer names our link. One syscall per link.
    /// Returns the programs that were re-attached.
    pub fn reattach_lost_links(&mut self) -> Result<Vec<&'static str>, BpfError> {
        // Detached on purpose by the duty cycle.
        if self.paused() {
            return Ok(Vec::new());
        }
        let health: Vec<LinkHealth> = self.attached.iter().map(link_health).collect();
        if health.iter().all(|h| *h == LinkHealth::Live) {
            return Ok(Vec::new());
        }
        let btf = kernel_btf(self.probe)?;
        let mut reattached = Vec::new();
        for (attached, health) in self.attached.iter_mut().zip(health) {
            match health {
                LinkHealth::Live => continue,
                // Our fd, but the link lost its program (detach-capable link types): close it.
                LinkHealth::Detached => drop(attached.link.take()),
                // The fd number no longer names our link (closed, maybe reused by another
                // file): closing it could close someone else's file, so forget it instead.
                LinkHealth::FdLost => std::mem::forget(attached.link.take()),
            }
            let link = attach_one(self.probe, &mut self.bpf, btf, &attached.attachment, false)?;
            attached.link_id = link_id(self.probe, &attached.attachment, &link)?;
            attached.link = Some(link);
            reattached.push(attached.attachment.program);
        }
        Ok(reattached)
    }

    /// Run count and run time of each attached program (zero unless bpf_stats is enabled).
    pub fn costs(&self) -> Vec<ProgramCost> {
        self.attached
            .iter()
            .filter_map(|a| {
                let program = self.bpf.program(a.attachment.program)?;
                let info = program.info().ok()?;
                Some(ProgramCost {
                    program: a.attachment.program.to_string(),
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkHealth {
    Live,
    Detached,
    FdLost,
}

/// One `BPF_OBJ_GET_INFO_BY_FD` on our link fd.
fn link_health(attached: &AttachedProgram) -> LinkHealth {
    let Some(link) = &attached.link else {
        return LinkHealth::FdLost;
    };
    match link.info() {
        Ok(info) if info.id() != attached.link_id => LinkHealth::FdLost,
        Ok(info) if info.program_id() == 0 => LinkHealth::Detached,
        Ok(_) => LinkHealth::Live,
        Err(_) => LinkHealth::FdLost,
    }
}

fn link_id(probe: &'static str, attachment: &Attachment, link: &FdLink) -> Result<u32, BpfError> {
    link.info()
        .map(|info| info.id())
        .map_err(|e| BpfError::Attach {
            probe,
            hook: attachment.hook.to_string(),
            reason: format!("cannot read link info: {e}"),
        })
}

/// Perf-event based links are fd links only where the kernel has BPF_LINK_CREATE for perf
/// events (>= 5.15); the link watcher needs an fd.
fn into_fd_link<L>(probe: &'static str, hook: Hook, link: L) -> Result<FdLink, BpfError>
where
    L: TryInto<FdLink>,
    L::Error: std::fmt::Display,
{
    link.try_into().map_err(|e| BpfError::Attach {
        probe,
        hook: hook.to_string(),
        reason: format!("link is not an fd link (kernel < 5.15?): {e}"),
    })
}

fn attach_one(
    probe: &'static str,
    bpf: &mut Ebpf,
    btf: &Btf,
    attachment: &Attachment,
    first_time: bool,
) -> Result<FdLink, BpfError> {
    let hook = attachment.hook;
    let program = bpf
        .program_mut(attachment.program)
        .ok_or(BpfError::MissingProgram {
            probe,
            program: attachment.program,
        })?;
    let fail = |e: aya::programs::ProgramError| classify_attach_error(probe, hook, e);
    let link: FdLink = match (hook, program) {
        (Hook::TpBtf(name), Program::BtfTracePoint(p)) => {
            if first_time {
                p.load(name, btf).map_err(fail)?;
            }
            let id = p.attach().map_err(fail)?;
            p.take_link(id).map_err(fail)?.into()
        }
        (Hook::RawTp(name), Program::RawTracePoint(p)) => {
            if first_time {
                p.load().map_err(fail)?;
            }
            let id = p.attach(name).map_err(fail)?;
            p.take_link(id).map_err(fail)?.into()
        }
        (Hook::TracePoint { category, name }, Program::TracePoint(p)) => {
            if first_time {
                p.load().map_err(fail)?;
            }
            let id = p.attach(category, name).map_err(fail)?;
            into_fd_link(probe, hook, p.take_link(id).map_err(fail)?)?
        }
        (Hook::KProbe(function), Program::KProbe(p)) => {
            if first_time {
                p.load().map_err(fail)?;
            }
            let id = p.attach(function, 0).map_err(fail)?;
            into_fd_link(probe, hook, p.take_link(id).map_err(fail)?)?
        }
        (Hook::FEntry(function), Program::FEntry(p)) => {
            if first_time {
                p.load(function, btf).map_err(fail)?;
            }
            let id = p.attach().map_err(fail)?;
            p.take_link(id).map_err(fail)?.into()
        }
        (hook, program) => {
            return Err(BpfError::Attach {
                probe,
                hook: hook.to_string(),
                reason: format!(
                    "program `{}` is a {:?} program, which does not match the hook",
                    attachment.program,
                    program.prog_type()
                ),
            })
        }
    };
    Ok(link)
}

/// Keeps kernel-wide BPF run-time statistics on while held (`kernel.bpf_stats_enabled` stays 0).
pub struct BpfStatsGuard {
    _fd: std::os::fd::OwnedFd,
}

impl BpfStatsGuard {
    pub fn enable() -> Result<Self, BpfError> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .map(|fd| Self { _fd: fd })
            .map_err(|e| BpfError::Stats(e.to_string()))
    }
}

/// `CLOCK_MONOTONIC` in ns: the clock of `bpf_ktime_get_ns()`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}
