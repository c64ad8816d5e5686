//! netdev_txqueue_timeout: the kernel's TX watchdog reports (tracepoint
//! net:net_dev_xmit_timeout) become `netdev_txqueue_timeout` documents with upstream's
//! `queue_index`, `device_name` and `driver_name`, and count in
//! `huatuo_bamai_netdev_txqueue_timeout_total{device}` (upstream has no counter for them; the
//! name is ours). Inactive when this kernel has no such tracepoint.
//!
//! The BPF side copies the raw record; it is decoded with the tracepoint's own tracefs format
//! (`probes::common::tracepoint_format`), as the ras probe does.

use std::collections::BTreeMap;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, u32_at, u64_at, EventRing};
use crate::probes::common::tracepoint_format::{self, Format};

const NAME: &str = "netdev_txqueue_timeout";
const EVENTS_MAP: &str = "TXQ_EVENTS";
const LOST_MAP: &str = "TXQ_LOST";
const TRACEPOINT: (&str, &str) = ("net", "net_dev_xmit_timeout");
const MAX_RECORDS_PER_TICK: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: TX queue timeouts the kernel's watchdog reports (tracepoint net/net_dev_xmit_timeout)
/// -> `netdev_txqueue_timeout` documents (queue_index, device_name, driver_name) and
/// huatuo_bamai_netdev_txqueue_timeout_total{device}. Inactive without the tracepoint.
pub struct NetdevTxqueueTimeoutConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the ring buffer is drained: a timeout is published within one interval.
    pub interval_ms: u64,
}

impl Default for NetdevTxqueueTimeoutConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(NetdevTxqueueTimeoutConfig, "netdev_txqueue_timeout");

/// One `struct txq_event` of netdev_txqueue_timeout.bpf.c: the raw tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutRecord {
    pub boot_ns: u64,
    pub data: Vec<u8>,
}

impl TimeoutRecord {
    pub const HEADER: usize = 16;
    pub const DATA_MAX: usize = 128;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let boot_ns = u64_at(bytes, 0)?;
        let len = u32_at(bytes, 8)? as usize;
        if len > Self::DATA_MAX {
            return None;
        }
        let data = bytes.get(Self::HEADER..Self::HEADER + len)?.to_vec();
        Some(Self { boot_ns, data })
    }
}

/// `tracer_data` of a `netdev_txqueue_timeout` document: upstream's `txqueueTracingData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxqueueTimeoutData {
    pub queue_index: u32,
    pub device_name: String,
    pub driver_name: String,
}

/// Decodes a record with the tracepoint's format; the error names the field that is missing
/// or out of range.
pub fn timeout_data(record: &TimeoutRecord, format: &Format) -> Result<TxqueueTimeoutData, String> {
    let fields = format.decode(&record.data);
    let text = |name: &str| -> Result<String, String> {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("record of {} bytes has no `{name}` text", record.data.len()))
    };
    let queue = fields
        .get("queue_index")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("record of {} bytes has no `queue_index`", record.data.len()))?;
    Ok(TxqueueTimeoutData {
        queue_index: u32::try_from(queue).map_err(|_| format!("queue_index {queue} < 0"))?,
        device_name: text("name")?,
        driver_name: text("driver")?,
    })
}

/// The tracepoint's format, `None` when this kernel lacks it.
pub fn tracepoint_format(sysfs_root: &std::path::Path) -> Result<Option<Format>, ProbeError> {
    tracepoint_format::read_format(sysfs_root, TRACEPOINT.0, TRACEPOINT.1).map_err(
        |(path, reason)| ProbeError::Parse {
            probe: NAME,
            path,
            reason,
        },
    )
}

pub struct NetdevTxqueueTimeoutProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    format: Format,
    per_device: BTreeMap<String, u64>,
    /// Records lost in the kernel (ring full), short or not decoding by the format.
    errors: u64,
}

impl Probe for NetdevTxqueueTimeoutProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = NetdevTxqueueTimeoutConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let format = tracepoint_format(&ctx.sysfs_root)?.ok_or(ProbeError::Unsupported {
            probe: NAME,
            reason: "this kernel has no net:net_dev_xmit_timeout tracepoint (tracefs events/net/net_dev_xmit_timeout)".into(),
        })?;
        let attachments = [Attachment {
            program: "on_net_dev_xmit_timeout",
            hook: Hook::TracePoint {
                category: TRACEPOINT.0,
                name: TRACEPOINT.1,
            },
        }];
        let bpf = ebpf::load(NAME, crate::bpf_object!("netdev_txqueue_timeout"), &[])?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &attachments)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            format,
            per_device: BTreeMap::new(),
            errors: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        for record in self.ring.drain(MAX_RECORDS_PER_TICK, TimeoutRecord::decode) {
            let data = match timeout_data(&record, &self.format) {
                Ok(data) => data,
                Err(reason) => {
                    tracing::warn!(probe = NAME, %reason, "TX timeout record does not decode");
                    self.errors += 1;
                    continue;
                }
            };
            *self.per_device.entry(data.device_name.clone()).or_default() += 1;
            let document = event_ring::document_at(
                &self.ctx,
                NAME,
                None,
                0,
                serde_json::to_value(&data).unwrap_or_default(),
                record.boot_ns,
            );
            self.ctx.events.publish(document);
        }
        self.errors += self
            .ring
            .account_losses(NAME, &self.programs, LOST_MAP, 0)?;
        let family = out.counter(
            "huatuo_bamai_netdev_txqueue_timeout_total",
            "TX queue timeouts the kernel's watchdog reported (net:net_dev_xmit_timeout), by device; cumulative.",
        );
        for (device, n) in &self.per_device {
            family.push(vec![("device", device.clone())], *n as f64);
        }
        out.counter(
            "huatuo_bamai_netdev_txqueue_timeout_errors_total",
            "TX timeout reports lost (ring buffer full) or not decoding by the tracepoint's format.",
        )
        .push(vec![], self.errors as f64);
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

#[cfg(test)]
mod tests;
