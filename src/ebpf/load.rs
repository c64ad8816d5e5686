//! Loading an embedded BPF object with the running kernel's BTF.

use aya::{Btf, Ebpf, EbpfLoader};

use super::{classify_load_error, BpfError};

/// Path of the running kernel's BTF; CO-RE and tp_btf need it.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel's BTF, parsed once per process (parsing takes tens of milliseconds and
/// every probe needs it for CO-RE and tp_btf).
pub(super) fn kernel_btf(probe: &'static str) -> Result<&'static Btf, BpfError> {
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
    load_sized(probe, object, globals, &[], &[])
}

/// As [`load`], plus 64-bit globals and map sizes chosen at run time (`max_entries`).
pub fn load_sized(
    probe: &'static str,
    object: &[u8],
    globals: &[(&str, u32)],
    globals_u64: &[(&str, u64)],
    max_entries: &[(&str, u32)],
) -> Result<Ebpf, BpfError> {
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
    for (name, value) in globals_u64 {
        loader.override_global(name, value, true);
    }
    for (name, size) in max_entries {
        loader.map_max_entries(name, *size);
    }
    loader
        .load(object)
        .map_err(|error| classify_load_error(probe, error))
}
