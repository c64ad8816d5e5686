//! ras: hardware error reports of the kernel become `ras` documents with upstream's `dev`,
//! `event`, `type`, `observed_timestamp` and `info`, and count in
//! `huatuo_bamai_ras_hw_err_total{type}` (upstream's types: mce, edac, acpi, aer, thr, arm_ghes).
//!
//! The tracepoints are classic ones (mce:mce_record, ras:mc_event, ras:non_standard_event,
//! ras:aer_event, irq_vectors:threshold_apic_entry, ras:arm_event), as upstream's: each kind is
//! attached where this kernel has its tracepoint (`format` under tracefs), and the probe is
//! `inactive` when none exists. The BPF side copies the raw record; `info` is that record
//! decoded with the tracepoint's own format (field names as the kernel's), as a JSON text as
//! upstream stores it. Threshold-interrupt (thr) documents are throttled as upstream's
//! `MceThrBackoff` (one per `thr_backoff_secs`); they all count.

mod record;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};
use crate::probes::common::tracepoint_format;

pub use crate::probes::common::tracepoint_format::{Field, Format};
pub use record::{RasKind, RasRecord};

const NAME: &str = "ras";
const EVENTS_MAP: &str = "RAS_EVENTS";
const LOST_MAP: &str = "RAS_LOST";
const MAX_REPORTS_PER_TICK: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: hardware errors the kernel reports (tracepoints mce:mce_record, ras:mc_event,
/// ras:non_standard_event, ras:aer_event, irq_vectors:threshold_apic_entry, ras:arm_event, each
/// where this kernel has it) -> `ras` documents (dev, event, type, observed_timestamp, info: the
/// decoded record) and huatuo_bamai_ras_hw_err_total{type}. Inactive when none of them exists.
pub struct RasConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the ring buffer is drained: a report is published within one interval.
    pub interval_ms: u64,
    /// After a threshold-interrupt (thr) document, further ones only count for this long
    /// (upstream's MceThrBackoff; 0: a document for each).
    pub thr_backoff_secs: u64,
}

impl Default for RasConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            thr_backoff_secs: 1800,
        }
    }
}

crate::probe_settings!(RasConfig, "ras");

/// `tracer_data` of a ras document, upstream's fields and types.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RasData {
    pub dev: String,
    pub event: String,
    #[serde(rename = "type")]
    pub error_type: String,
    /// RFC 3339 (ns, UTC) time of the kernel's report.
    pub observed_timestamp: String,
    /// The decoded tracepoint record as a JSON object's text, with upstream's keys.
    pub info: String,
}

/// The document data of one record: `None` when the kind's format is unknown.
pub fn ras_data(record: &RasRecord, format: &Format) -> RasData {
    let mut fields = format.decode(&record.data);
    if record.kind == RasKind::AcpiGhes {
        // GUIDs in `char[16]`: upstream prints them as hex, not text.
        for name in ["sec_type", "fru_id"] {
            if let Some(raw) = format.raw(&record.data, name) {
                let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                fields.insert(name.into(), hex.into());
            }
        }
    }
    let (_, event) = record.kind.dev_event();
    let error_type = record.kind.error_type(&fields);
    let dev = record.kind.dev(&fields);
    let info = record.kind.upstream_info(fields, error_type, record.cpu);
    RasData {
        dev,
        event: event.into(),
        error_type: error_type.into(),
        observed_timestamp: crate::events::document::rfc3339(event_ring::boot_ns_to_system_time(
            record.boot_ns,
        )),
        info: serde_json::Value::Object(info).to_string(),
    }
}

/// The kinds whose tracepoint this kernel has, with their formats.
pub fn available_kinds(sysfs_root: &std::path::Path) -> Result<Vec<(RasKind, Format)>, ProbeError> {
    let mut kinds = Vec::new();
    for kind in RasKind::ALL {
        let (category, name) = kind.tracepoint();
        let format = tracepoint_format::read_format(sysfs_root, category, name).map_err(
            |(path, reason)| ProbeError::Parse {
                probe: NAME,
                path,
                reason,
            },
        )?;
        if let Some(format) = format {
            kinds.push((kind, format));
        }
    }
    Ok(kinds)
}

pub struct RasProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    formats: HashMap<&'static str, Format>,
    counts: Vec<(RasKind, u64)>,
    thr_backoff: Duration,
    last_thr_document: Option<Instant>,
}

impl Probe for RasProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = RasConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let kinds = available_kinds(&ctx.sysfs_root)?;
        if kinds.is_empty() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: "none of the hardware error tracepoints (mce:mce_record, ras:mc_event, ras:non_standard_event, ras:aer_event, irq_vectors:threshold_apic_entry, ras:arm_event) exists on this kernel".into(),
            });
        }
        let attachments: Vec<Attachment> = kinds
            .iter()
            .map(|(kind, _)| {
                let (category, name) = kind.tracepoint();
                Attachment {
                    program: kind.program(),
                    hook: Hook::TracePoint { category, name },
                }
            })
            .collect();
        let bpf = ebpf::load(NAME, crate::bpf_object!("ras"), &[])?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &attachments)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            counts: kinds.iter().map(|(k, _)| (*k, 0)).collect(),
            formats: kinds.into_iter().map(|(k, f)| (k.label(), f)).collect(),
            thr_backoff: Duration::from_secs(settings.thr_backoff_secs),
            last_thr_document: None,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self.ring.drain(MAX_REPORTS_PER_TICK, RasRecord::decode);
        let now = Instant::now();
        for record in records {
            if let Some((_, n)) = self.counts.iter_mut().find(|(k, _)| *k == record.kind) {
                *n += 1;
            }
            if record.kind == RasKind::Thr {
                if self
                    .last_thr_document
                    .is_some_and(|at| now.duration_since(at) < self.thr_backoff)
                {
                    continue;
                }
                self.last_thr_document = Some(now);
            }
            if let Some(document) = self.document(&record) {
                self.ctx.events.publish(document);
            }
        }
        // Reports lost in the kernel (ring full) or that did not decode are logged by the ring.
        self.ring
            .account_losses(NAME, &self.programs, LOST_MAP, 0)?;
        let family = out.counter(
            "huatuo_bamai_ras_hw_err_total",
            "Hardware errors the kernel reported, by upstream's type (mce, edac, acpi, aer, thr, arm_ghes); cumulative.",
        );
        for (kind, n) in &self.counts {
            family.push(vec![("type", kind.label().to_string())], *n as f64);
        }
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl RasProbe {
    fn document(&self, record: &RasRecord) -> Option<EventDocument> {
        let format = self.formats.get(record.kind.label())?;
        let data = ras_data(record, format);
        Some(event_ring::document_at(
            &self.ctx,
            NAME,
            None,
            0,
            serde_json::to_value(&data).unwrap_or_default(),
            record.boot_ns,
        ))
    }
}

#[cfg(test)]
mod tests;
