//! Shared BPF machinery: load an embedded object with the kernel's BTF, attach its programs by a
//! declarative list of hooks, watch the links and re-attach what was detached from outside, and
//! read each program's run time and count (bpf_stats). Probes only declare *what* to attach.

mod attach;
mod errors;
pub mod histogram;
mod kernelfs;
mod load;
mod program_set;
mod stats;

pub use attach::{Attachment, Hook};
pub use errors::{classify_attach_error, classify_load_error, BpfError};
pub use kernelfs::{ensure_kernel_filesystems, KernelFsReport};
pub use load::{load, load_sized, KERNEL_BTF};
pub use program_set::{duty_slot, BpfProgramSet, MAX_EVENT_DIVISOR, SAMPLING_MAP};
pub use stats::{BpfStatsGuard, ProgramCost};

/// Embeds a BPF object built by `build.rs` from `src/probes/<probe>/<name>.bpf.c`.
#[macro_export]
macro_rules! bpf_object {
    ($name:literal) => {
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/", $name, ".bpf.o"))
    };
}
