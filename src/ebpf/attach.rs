//! Where a program goes (`Hook`, `Attachment`) and the one attach call per hook kind.

use aya::programs::{links::FdLink, Program};
use aya::{Btf, Ebpf};

use super::{classify_attach_error, BpfError};

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
    /// Software cpu-clock perf event of one CPU, sampling at `frequency_hz` (`SEC("perf_event")`):
    /// a profiler attaches one per online CPU.
    PerfCpuClock { cpu: u32, frequency_hz: u64 },
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::TpBtf(name) => write!(f, "tp_btf/{name}"),
            Hook::RawTp(name) => write!(f, "raw_tp/{name}"),
            Hook::TracePoint { category, name } => write!(f, "tracepoint/{category}/{name}"),
            Hook::KProbe(function) => write!(f, "kprobe/{function}"),
            Hook::FEntry(function) => write!(f, "fentry/{function}"),
            Hook::PerfCpuClock { cpu, frequency_hz } => {
                write!(f, "perf_event/cpu-clock/cpu{cpu}@{frequency_hz}Hz")
            }
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

impl Attachment {
    /// `program` on the classic tracepoint `syscalls/<name>` (e.g. `sys_enter_write`).
    pub const fn syscall(program: &'static str, name: &'static str) -> Attachment {
        Attachment {
            program,
            hook: Hook::TracePoint {
                category: "syscalls",
                name,
            },
        }
    }

    /// `program` on the BTF tracepoint `name` (`SEC("tp_btf/<name>")`).
    pub const fn tp_btf(program: &'static str, name: &'static str) -> Attachment {
        Attachment {
            program,
            hook: Hook::TpBtf(name),
        }
    }
}

pub(super) fn link_id(
    probe: &'static str,
    attachment: &Attachment,
    link: &FdLink,
) -> Result<u32, BpfError> {
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

pub(super) fn attach_one(
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
        (Hook::PerfCpuClock { cpu, frequency_hz }, Program::PerfEvent(p)) => {
            use aya::programs::perf_event::{
                PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent,
            };
            // One program, one perf event per CPU: only the first attachment loads it.
            if p.fd().is_err() {
                p.load().map_err(fail)?;
            }
            let id = p
                .attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Frequency(frequency_hz),
                    false,
                )
                .map_err(fail)?;
            into_fd_link(probe, hook, p.take_link(id).map_err(fail)?)?
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
