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

/// One `field:` line of a tracepoint format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C type as written (`unsigned int`, `__data_loc char[]`, `u8[16]`, `char[32]`).
    pub ctype: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
}

/// The fields of a tracepoint record, without the `common_*` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub fields: Vec<Field>,
}

impl Format {
    /// Parses a tracefs `format` file; an error names the line that is not a field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut fields = Vec::new();
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let bad = |what: &str| format!("format line {line:?}: {what}");
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().ok_or_else(|| bad("no declaration"))?;
            let mut value = |key: &str| -> Result<usize, String> {
                parts
                    .next()
                    .and_then(|p| p.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(&format!("no {key}<number>")))
            };
            let offset = value("offset:")?;
            let size = value("size:")?;
            let signed = value("signed:")? != 0;
            // `type name` or `type name[N]`: the name is the last word, an array suffix moves to
            // the type.
            let (ctype, name) = decl.rsplit_once(' ').ok_or_else(|| bad("no field name"))?;
            let (name, array) = match name.split_once('[') {
                Some((n, a)) => (n, format!("[{a}")),
                None => (name, String::new()),
            };
            if name.starts_with("common_") {
                continue;
            }
            fields.push(Field {
                name: name.to_string(),
                ctype: format!("{ctype}{array}"),
                offset,
                size,
                signed,
            });
        }
        if fields.is_empty() {
            return Err("format has no fields".into());
        }
        Ok(Self { fields })
    }

    /// Decodes a raw record: integers as numbers, `char` arrays and `__data_loc char[]` as
    /// text, other arrays as hex. Fields past the copied bytes are left out (the record was
    /// longer than ras.bpf.c copies); `truncated` lists them.
    pub fn decode(&self, data: &[u8]) -> Map<String, Value> {
        let mut out = Map::new();
        let mut truncated = Vec::new();
        for f in &self.fields {
            let Some(raw) = data.get(f.offset..f.offset + f.size) else {
                truncated.push(Value::String(f.name.clone()));
                continue;
            };
            let value = if f.ctype.starts_with("__data_loc") {
                // u32: length << 16 | offset from the record's start.
                let loc = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                let (off, len) = (loc & 0xffff, loc >> 16);
                match data.get(off..off + len) {
                    Some(bytes) if f.ctype.contains("char") => text(bytes),
                    Some(bytes) => hex(bytes),
                    None => {
                        truncated.push(Value::String(f.name.clone()));
                        continue;
                    }
                }
            } else if f.ctype.ends_with(']') {
                if f.ctype.starts_with("char") {
                    text(raw)
                } else {
                    hex(raw)
                }
            } else {
                integer(raw, f.signed)
            };
            out.insert(f.name.clone(), value);
        }
        if !truncated.is_empty() {
            out.insert("truncated".into(), Value::Array(truncated));
        }
        out
    }
}

fn integer(raw: &[u8], signed: bool) -> Value {
    let mut bytes = [0u8; 8];
    bytes[..raw.len().min(8)].copy_from_slice(&raw[..raw.len().min(8)]);
    let unsigned = u64::from_le_bytes(bytes);
    if signed {
        let shift = 64 - 8 * raw.len().clamp(1, 8) as u32;
        Value::from(((unsigned << shift) as i64) >> shift)
    } else {
        Value::from(unsigned)
    }
}

fn text(bytes: &[u8]) -> Value {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Value::String(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
