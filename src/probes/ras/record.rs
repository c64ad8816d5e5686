//! Hardware error records: the raw tracepoint record ras.bpf.c copies, decoded field by field
//! with the tracepoint's own `format` file from tracefs (so a kernel that moves a field still
//! decodes right), and upstream's `dev` / `event` / `type` per kind.

use serde_json::{Map, Value};

/// The kinds ras.bpf.c reports, in its `kind` numbering, with upstream's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RasKind {
    Mce,
    Edac,
    AcpiGhes,
    PcieAer,
    Thr,
    ArmGhes,
}

impl RasKind {
    pub const ALL: [RasKind; 6] = [
        RasKind::Mce,
        RasKind::Edac,
        RasKind::AcpiGhes,
        RasKind::PcieAer,
        RasKind::Thr,
        RasKind::ArmGhes,
    ];

    pub fn from_index(index: u32) -> Option<Self> {
        Self::ALL.get(index as usize).copied()
    }

    /// The `type` label of `huatuo_bamai_ras_hw_err_total`, as upstream.
    pub fn label(self) -> &'static str {
        match self {
            RasKind::Mce => "mce",
            RasKind::Edac => "edac",
            RasKind::AcpiGhes => "acpi",
            RasKind::PcieAer => "aer",
            RasKind::Thr => "thr",
            RasKind::ArmGhes => "arm_ghes",
        }
    }

    /// Tracepoint `(category, name)`.
    pub fn tracepoint(self) -> (&'static str, &'static str) {
        match self {
            RasKind::Mce => ("mce", "mce_record"),
            RasKind::Edac => ("ras", "mc_event"),
            RasKind::AcpiGhes => ("ras", "non_standard_event"),
            RasKind::PcieAer => ("ras", "aer_event"),
            RasKind::Thr => ("irq_vectors", "threshold_apic_entry"),
            RasKind::ArmGhes => ("ras", "arm_event"),
        }
    }

    pub fn program(self) -> &'static str {
        match self {
            RasKind::Mce => "on_mce_record",
            RasKind::Edac => "on_mc_event",
            RasKind::AcpiGhes => "on_non_standard_event",
            RasKind::PcieAer => "on_aer_event",
            RasKind::Thr => "on_threshold_apic_entry",
            RasKind::ArmGhes => "on_arm_event",
        }
    }

    /// Upstream's `dev` and `event` of the document.
    /// (upstream's ras.go; an AER document's `dev` is `PCIe <dev_name>`, see
    /// [`RasKind::dev`]).
    pub fn dev_event(self) -> (&'static str, &'static str) {
        match self {
            RasKind::Mce => ("CPU/MEM", "MCE"),
            RasKind::Edac => ("MEM", "EDAC"),
            RasKind::AcpiGhes => ("ACPI", "NON_STANDARD"),
            RasKind::PcieAer => ("PCIe", "AER"),
            RasKind::Thr => ("CPU", "MCE_THRESHOLD"),
            RasKind::ArmGhes => ("CPU", "ARM_GHES"),
        }
    }

    /// Upstream's `dev`: the device name follows `PCIe` for AER.
    pub fn dev(self, info: &Map<String, Value>) -> String {
        let (dev, _) = self.dev_event();
        match (self, info.get("dev_name").and_then(Value::as_str)) {
            (RasKind::PcieAer, Some(name)) if !name.is_empty() => format!("{dev} {name}"),
            _ => dev.to_string(),
        }
    }

    /// `info` with upstream's keys and values (ras.go's per-kind structs): the kernel's fields
    /// renamed (`mcgcap` → `mcg_cpu_cap`, `msg` → `err_msg`, …) and upstream's derived values
    /// (`err_type`, `grain`, `err_reason`, `tlp_header`, ARM states); fields upstream has no
    /// name for keep the kernel's. `error_type` is this record's [`RasKind::error_type`], `cpu`
    /// where the report ran.
    pub fn upstream_info(
        self,
        fields: Map<String, Value>,
        error_type: &str,
        cpu: u32,
    ) -> Map<String, Value> {
        let renames: &[(&str, &str)] = match self {
            RasKind::Mce => &[
                ("mcgcap", "mcg_cpu_cap"),
                ("mcgstatus", "mcg_msr_status"),
                ("status", "banks_msr_status"),
                ("addr", "banks_msr_addr"),
                ("misc", "banks_msr_misc"),
                ("synd", "mca_synd_msr"),
                ("ipid", "mca_ipid_msr"),
                ("ip", "instr_pointer"),
                ("tsc", "tsc_timestamp"),
                ("cs", "code_seg"),
            ],
            RasKind::Edac => &[
                ("error_count", "err_count"),
                ("msg", "err_msg"),
                ("middle_layer", "mid_layer"),
                ("lower_layer", "low_layer"),
                ("address", "addr"),
                ("driver_detail", "driver"),
            ],
            RasKind::AcpiGhes => &[("sev", "severity"), ("len", "data_len")],
            RasKind::ArmGhes => &[("affinity", "affinity_level")],
            RasKind::PcieAer | RasKind::Thr => &[],
        };
        let mut out = Map::new();
        for (key, value) in fields {
            let key = renames
                .iter()
                .find(|(from, _)| *from == key)
                .map_or(key, |(_, to)| to.to_string());
            out.insert(key, value);
        }
        let num = |out: &Map<String, Value>, key: &str| out.get(key).and_then(Value::as_u64);
        match self {
            RasKind::Edac => {
                // `long` in the kernel, `uint64` in upstream's document.
                for key in ["addr", "syndrome"] {
                    if let Some(v) = out.get(key).and_then(Value::as_i64) {
                        out.insert(key.into(), (v as u64).into());
                    }
                }
                out.remove("error_type");
                out.insert("err_type".into(), error_type.into());
                if let Some(bits) = out.remove("grain_bits").and_then(|v| v.as_u64()) {
                    out.insert(
                        "grain".into(),
                        1u64.checked_shl(bits as u32).unwrap_or(0).into(),
                    );
                }
            }
            RasKind::AcpiGhes => {
                // Upstream prints the error section as Go's `% x` (hex bytes, space-separated).
                if let Some(hex) = out.remove("buf").as_ref().and_then(Value::as_str) {
                    let spaced: Vec<&str> = (0..hex.len() / 2)
                        .filter_map(|i| hex.get(2 * i..2 * i + 2))
                        .collect();
                    out.insert("raw_data".into(), spaced.join(" ").into());
                }
            }
            RasKind::PcieAer => {
                let status = num(&out, "status").unwrap_or(0) as u32;
                let correctable = num(&out, "severity") == Some(2);
                out.insert("err_type".into(), error_type.into());
                out.insert("err_reason".into(), aer_reason(status, correctable).into());
                let valid = num(&out, "tlp_header_valid").unwrap_or(0) != 0;
                let header = out
                    .get("tlp_header")
                    .and_then(Value::as_str)
                    .map(tlp_header);
                let text = match header {
                    Some(Some(h)) if valid => h,
                    _ => "not available".to_string(),
                };
                out.insert("tlp_header".into(), text.into());
            }
            RasKind::Thr => {
                out.insert("cpu".into(), cpu.into());
            }
            RasKind::ArmGhes => {
                for key in ["mpidr", "midr"] {
                    if let Some(v) = num(&out, key) {
                        out.insert(key.into(), format!("{v:#x}").into());
                    }
                }
                let running = num(&out, "running_state").map(|v| v as u32);
                let psci = num(&out, "psci_state").map(|v| v as u32);
                let (state, psci) = match (running, psci) {
                    (Some(u32::MAX), _) | (None, _) => ("N/A".to_string(), "N/A".to_string()),
                    (Some(r), _) if r & 1 == 1 => ("running".into(), "N/A".into()),
                    (Some(_), p) => ("stopped".into(), format!("{:#x}", p.unwrap_or(0))),
                };
                out.insert("running_state".into(), state.into());
                out.insert("psci_state".into(), psci.into());
                if let Some(a) = num(&out, "affinity_level") {
                    let text = if a == 0xff {
                        "N/A".to_string()
                    } else {
                        a.to_string()
                    };
                    out.insert("affinity_level".into(), text.into());
                }
            }
            RasKind::Mce => {}
        }
        out
    }

    /// Upstream's severity classes (Corrected, UncorrectedRecoverable, UncorrectedDeferred,
    /// UncorrectedFatal, Info, unknown) from the decoded fields.
    pub fn error_type(self, info: &Map<String, Value>) -> &'static str {
        let num = |name: &str| info.get(name).and_then(Value::as_i64);
        match self {
            // IA32_MCi_STATUS: bit 61 UC, bit 57 PCC (context corrupt), bit 44 deferred (AMD).
            RasKind::Mce => match info.get("status").and_then(Value::as_u64) {
                None => "unknown",
                Some(s) if s & (1 << 61) == 0 && s & (1 << 44) != 0 => "UncorrectedDeferred",
                Some(s) if s & (1 << 61) == 0 => "Corrected",
                Some(s) if s & (1 << 57) != 0 => "UncorrectedFatal",
                Some(_) => "UncorrectedRecoverable",
            },
            // enum hw_event_mc_err_type.
            RasKind::Edac => match num("error_type") {
                Some(0) => "Corrected",
                Some(1) => "UncorrectedRecoverable",
                Some(2) => "UncorrectedDeferred",
                Some(3) => "UncorrectedFatal",
                Some(4) => "Info",
                _ => "unknown",
            },
            // GHES_SEV_*.
            RasKind::AcpiGhes => match num("sev") {
                Some(0) => "Info",
                Some(1) => "Corrected",
                Some(2) => "UncorrectedRecoverable",
                Some(3) => "UncorrectedFatal",
                _ => "unknown",
            },
            // AER_NONFATAL, AER_FATAL, AER_CORRECTABLE.
            RasKind::PcieAer => match num("severity") {
                Some(0) => "UncorrectedRecoverable",
                Some(1) => "UncorrectedFatal",
                Some(2) => "Corrected",
                _ => "unknown",
            },
            // A threshold interrupt: corrected errors over the bank's threshold.
            RasKind::Thr => "Corrected",
            RasKind::ArmGhes => match num("sev") {
                Some(0) => "Info",
                Some(1) => "Corrected",
                Some(2) => "UncorrectedRecoverable",
                Some(3) => "UncorrectedFatal",
                _ => "unknown",
            },
        }
    }
}

/// PCIe AER status bits (PCIe Base Spec §7.8.4) by name, as upstream's `pciErrReason`: the
/// name when exactly one known bit is set, else `unknown`.
fn aer_reason(status: u32, correctable: bool) -> &'static str {
    const CORRECTABLE: &[(u32, &str)] = &[
        (0x1, "Receiver Error"),
        (0x40, "Bad TLP"),
        (0x80, "Bad DLLP"),
        (0x100, "REPLAY_NUM Rollover"),
        (0x1000, "Replay Timer Timeout"),
        (0x2000, "Advisory Non-Fatal Error"),
        (0x4000, "Corrected Internal Error"),
        (0x8000, "Header Log Overflow"),
    ];
    const UNCORRECTABLE: &[(u32, &str)] = &[
        (0x1, "Undefined"),
        (0x10, "Data Link Protocol Error"),
        (0x20, "Surprise Down Error"),
        (0x1000, "Poisoned TLP"),
        (0x2000, "Flow Control Protocol Error"),
        (0x4000, "Completion Timeout"),
        (0x8000, "Completer Abort"),
        (0x10000, "Unexpected Completion"),
        (0x20000, "Receiver Overflow"),
        (0x40000, "Malformed TLP"),
        (0x80000, "ECRC Error"),
        (0x100000, "Unsupported Request Error"),
        (0x200000, "ACS Violation"),
        (0x400000, "Uncorrectable Internal Error"),
        (0x800000, "MC Blocked TLP"),
        (0x1000000, "AtomicOp Egress Blocked"),
        (0x2000000, "TLP Prefix Blocked Error"),
    ];
    let table = if correctable {
        CORRECTABLE
    } else {
        UNCORRECTABLE
    };
    table
        .iter()
        .find(|(bit, _)| *bit == status)
        .map_or("unknown", |(_, name)| name)
}

/// The decoded `u8[16]` TLP header (hex text of four little-endian u32) as upstream's
/// `{0x..,0x..,0x..,0x..}`.
fn tlp_header(hex: &str) -> Option<String> {
    let words: Option<Vec<String>> = (0..4)
        .map(|i| {
            let word = hex.get(8 * i..8 * i + 8)?;
            let bytes: Option<Vec<u8>> = (0..4)
                .map(|j| u8::from_str_radix(word.get(2 * j..2 * j + 2)?, 16).ok())
                .collect();
            let bytes: [u8; 4] = bytes?.try_into().ok()?;
            Some(format!("{:#x}", u32::from_le_bytes(bytes)))
        })
        .collect();
    Some(format!("{{{}}}", words?.join(",")))
}

/// One `struct ras_event` of ras.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RasRecord {
    pub boot_ns: u64,
    pub kind: RasKind,
    pub cpu: u32,
    pub data: Vec<u8>,
}

impl RasRecord {
    pub const HEADER: usize = 24;
    pub const DATA_MAX: usize = 512;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let boot_ns = crate::probes::common::event_ring::u64_at(bytes, 0)?;
        let kind = RasKind::from_index(crate::probes::common::event_ring::u32_at(bytes, 8)?)?;
        let len = crate::probes::common::event_ring::u32_at(bytes, 12)? as usize;
        if len > Self::DATA_MAX {
            return None;
        }
        let cpu = crate::probes::common::event_ring::u32_at(bytes, 16)?;
        let data = bytes.get(Self::HEADER..Self::HEADER + len)?.to_vec();
        Some(Self {
            boot_ns,
            kind,
            cpu,
            data,
        })
    }
}
