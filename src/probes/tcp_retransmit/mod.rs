//! tcp_retransmit: every TCP retransmission (tp_btf tcp:tcp_retransmit_skb and
//! tcp:tcp_retransmit_synack) counted as `huatuo_bamai_tcp_retransmit_total{kind}`, and up to
//! `max_events_per_second` of them stored as `tcp_retransmit` documents with upstream's fields
//! (4-tuple, state, seq/ack, reason class, phase, netns, container, drop_location).

mod record;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

pub use record::{Kind, RetransmitData, RetransmitRecord};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};

const NAME: &str = "tcp_retransmit";
const EVENTS_MAP: &str = "TCPR_EVENTS";
const COUNT_MAP: &str = "TCPR_COUNT";
const SUPPRESSED_MAP: &str = "TCPR_SUPPRESSED";
/// Records published per tick at most; the rest wait in the ring for the next tick.
const MAX_RECORDS_PER_TICK: usize = 4096;
const ATTACHMENTS: [Attachment; 3] = [
    Attachment {
        program: "on_tcp_retransmit_skb",
        hook: Hook::TpBtf("tcp_retransmit_skb"),
    },
    Attachment {
        program: "on_tcp_retransmit_synack",
        hook: Hook::TpBtf("tcp_retransmit_synack"),
    },
    // Remembers the flows of recent drops for drop_location.
    Attachment {
        program: "on_drop_flow",
        hook: Hook::TpBtf("kfree_skb"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: TCP retransmissions (tp_btf tcp/tcp_retransmit_skb, tcp/tcp_retransmit_synack) ->
/// `tcp_retransmit` documents (4-tuple, state, seq/ack, tcp_reason RTO / fast_retransmit /
/// reorder_prone_fast / TLP, phase, netns, container, drop_location from recent skb/kfree_skb
/// drops of the flow) and huatuo_bamai_tcp_retransmit_total{kind}. Off by default, as upstream
/// (tcp_retransmit is in its default BlackList).
pub struct TcpRetransmitConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Ring buffer drain period: a retransmit is published within one interval.
    pub interval_ms: u64,
    /// In-kernel rate limit: records queued per second (0 = no limit); every retransmit is
    /// still counted, the rest of the records count as suppressed.
    pub max_events_per_second: u32,
    /// `drop_location`: a retransmit whose flow had a segment dropped by this host's stack
    /// (skb:kfree_skb) at most this long before is `host_software`, else
    /// `network_or_host_hardware` (upstream's 2 s window); 0 leaves the field out.
    pub drop_window_ms: u64,
}

impl Default for TcpRetransmitConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_ms: 1000,
            max_events_per_second: 100,
            drop_window_ms: 2000,
        }
    }
}

crate::probe_settings!(TcpRetransmitConfig, "tcp_retransmit");

pub struct TcpRetransmitProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    drop_window_ns: u64,
}

impl Probe for TcpRetransmitProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = TcpRetransmitConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let globals = [("max_per_sec", settings.max_events_per_second)];
        let bpf = ebpf::load(NAME, crate::bpf_object!("tcp_retransmit"), &globals)?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            drop_window_ns: settings.drop_window_ms.saturating_mul(1_000_000),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self
            .ring
            .drain(MAX_RECORDS_PER_TICK, RetransmitRecord::decode);
        let containers = self.ctx.containers.borrow().clone();
        for record in records {
            let container = containers.by_cgroup_id(record.cgroup_id);
            let mut data = record.data();
            data.container_id = container.map(|c| c.id.clone());
            data.drop_location = record.drop_location(self.drop_window_ns);
            let document = event_ring::document_at(
                &self.ctx,
                NAME,
                container.map(|c| c.as_ref()),
                record.cgroup_id,
                serde_json::to_value(&data).unwrap_or_default(),
                record.boot_ns,
            );
            self.ctx.events.publish(document);
        }
        self.ring
            .account_losses(NAME, &self.programs, SUPPRESSED_MAP, 1)?;
        let family = out.counter(
            "huatuo_bamai_tcp_retransmit_total",
            "TCP retransmissions seen by tcp:tcp_retransmit_skb (kind=skb) and tcp:tcp_retransmit_synack (kind=synack); cumulative.",
        );
        for (index, kind) in [(0, "skb"), (1, "synack")] {
            let count = self.programs.per_cpu_sum(COUNT_MAP, index)?;
            family.push(vec![("kind", kind.to_string())], count as f64);
        }
        let suppressed = self.programs.per_cpu_sum(SUPPRESSED_MAP, 0)?;
        out.counter(
            "huatuo_bamai_tcp_retransmit_suppressed_total",
            "Retransmissions counted but not stored: over tcp_retransmit.max_events_per_second.",
        )
        .push(vec![], suppressed as f64);
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

#[cfg(test)]
mod tests;
