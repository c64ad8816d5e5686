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
    pub fn dev_event(self) -> (&'static str, &'static str) {
        match self {
            RasKind::Mce => ("CPU/MEM", "MCE"),
            RasKind::Edac => ("MEM", "EDAC"),
            RasKind::AcpiGhes => ("ACPI", "GHES"),
            RasKind::PcieAer => ("PCIE", "AER"),
            RasKind::Thr => ("CPU", "THR"),
            RasKind::ArmGhes => ("CPU", "ARM"),
        }
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

/// One `struct ras_event` of ras.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RasRecord {
    pub boot_ns: u64,
    pub kind: RasKind,
    pub data: Vec<u8>,
}

impl RasRecord {
    pub const HEADER: usize = 16;
    pub const DATA_MAX: usize = 512;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let boot_ns = crate::probes::common::event_ring::u64_at(bytes, 0)?;
        let kind = RasKind::from_index(crate::probes::common::event_ring::u32_at(bytes, 8)?)?;
        let len = crate::probes::common::event_ring::u32_at(bytes, 12)? as usize;
        if len > Self::DATA_MAX {
            return None;
        }
        let data = bytes.get(Self::HEADER..Self::HEADER + len)?.to_vec();
        Some(Self {
            boot_ns,
            kind,
            data,
        })
    }
}
