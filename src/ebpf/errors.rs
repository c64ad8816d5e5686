//! BPF errors that carry the probe and the kernel object, and the rule that turns "the kernel
//! lacks this hook" into `Unsupported` (the probe goes `inactive`, never a restart loop).

use aya::programs::ProgramError;

use super::Hook;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The kernel lacks a feature this probe needs; retrying will not help.
    #[error("{probe}: unsupported on this kernel: {reason}")]
    Unsupported { probe: &'static str, reason: String },
    /// The agent lacks the privileges to load BPF; restarting will not help either.
    #[error("{probe}: not permitted to load BPF: {reason}")]
    NotPermitted { probe: &'static str, reason: String },
    #[error("{probe}: cannot read kernel BTF: {source}")]
    Btf {
        probe: &'static str,
        #[source]
        source: aya::BtfError,
    },
    #[error("{probe}: cannot load BPF object: {reason}")]
    Load { probe: &'static str, reason: String },
    #[error("{probe}: BPF object has no program `{program}`")]
    MissingProgram {
        probe: &'static str,
        program: &'static str,
    },
    #[error("{probe}: BPF object has no map `{map}`")]
    MissingMap {
        probe: &'static str,
        map: &'static str,
    },
    #[error("{probe}: cannot attach {hook}: {reason}")]
    Attach {
        probe: &'static str,
        hook: String,
        reason: String,
    },
    #[error("{probe}: cannot read map `{map}`: {reason}")]
    MapRead {
        probe: &'static str,
        map: &'static str,
        reason: String,
    },
    #[error("cannot enable bpf_stats: {0}")]
    Stats(String),
}

/// Load-time failure: missing privileges make the probe inactive (restarting cannot help);
/// anything else is reported with its whole cause chain.
pub fn classify_load_error(probe: &'static str, error: aya::EbpfError) -> BpfError {
    let text = error_chain(&error);
    if !is_root() && (has_io_error(&error, libc::EPERM) || text.contains("Operation not permitted"))
    {
        return BpfError::NotPermitted {
            probe,
            reason: format!("run as root (or with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): {text}"),
        };
    }
    BpfError::Load {
        probe,
        reason: text,
    }
}

impl BpfError {
    /// The probe cannot run on this host as it is (missing kernel feature or privileges): it
    /// goes `inactive` instead of into a restart loop.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            BpfError::Unsupported { .. } | BpfError::NotPermitted { .. }
        )
    }
}

/// "outer: inner: innermost" — aya's errors keep the io error as a source, not in Display.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn has_io_error(error: &(dyn std::error::Error + 'static), errno: i32) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(errno) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Maps an aya error at load/attach time to `Unsupported` when the hook does not exist here
/// (missing BTF type or tracepoint, kprobes compiled out, fentry locked), else to `Attach`.
pub fn classify_attach_error(probe: &'static str, hook: Hook, error: ProgramError) -> BpfError {
    let text = error_chain(&error);
    let unsupported = |reason: String| BpfError::Unsupported { probe, reason };
    match &error {
        ProgramError::Btf(_) => {
            return unsupported(format!(
                "{hook}: tracepoint not found in kernel BTF ({text})"
            ))
        }
        // As root, EPERM loading an fentry program means the kernel forbids trampolines.
        ProgramError::LoadError { io_error, .. }
            if io_error.raw_os_error() == Some(libc::EPERM)
                && matches!(hook, Hook::FEntry(_))
                && is_root() =>
        {
            return unsupported(format!(
                "fentry/fexit unavailable: the kernel refuses BPF trampolines ({hook}: {text})"
            ))
        }
        ProgramError::LoadError { io_error, .. }
            if io_error.raw_os_error() == Some(libc::EPERM) =>
        {
            return BpfError::Attach {
                probe,
                hook: hook.to_string(),
                reason: format!("permission denied (run as root / CAP_BPF+CAP_PERFMON): {text}"),
            }
        }
        _ => {}
    }
    if text.contains("kprobe/type") {
        return unsupported("kprobes unavailable: CONFIG_KPROBES off".to_string());
    }
    if text.contains("tracefs not found") {
        return unsupported(format!(
            "{hook}: tracefs is not mounted and could not be mounted"
        ));
    }
    if text.contains("No such file or directory") || has_io_error(&error, libc::ENOENT) {
        return unsupported(format!(
            "{hook}: hook does not exist on this kernel ({text})"
        ));
    }
    BpfError::Attach {
        probe,
        hook: hook.to_string(),
        reason: text,
    }
}
