//! net_rx_latency: received IPv4/IPv6 TCP packets that are already old (now − skb->tstamp) when
//! they reach a stage of the receive path: the driver's hand-off (net:netif_receive_skb), TCP
//! (tcp:tcp_probe) and the copy to the receiving process (skb:skb_copy_datagram_iovec). A packet
//! over its stage's threshold counts in `huatuo_bamai_net_rx_latency_total{stage}` and, up to
//! `max_events_per_second`, becomes a `net_rx_latency` document with upstream's fields. The probe
//! keeps a socket with SO_TIMESTAMPING / SOF_TIMESTAMPING_RX_SOFTWARE open, as upstream: that
//! turns on the kernel's RX software timestamps (net_enable_timestamp) for every packet.

mod record;
mod timestamps;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

pub use record::{NetRxLatencyData, RxRecord, Stage, StampClock};
pub use timestamps::{tai_offset_ns, RxTimestamps};

use crate::containers::{Container, ContainerSet, Qos};
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfError, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};

const NAME: &str = "net_rx_latency";
const EVENTS_MAP: &str = "NETRX_EVENTS";
const CONFIG_MAP: &str = "NETRX_CONFIG";
const COUNT_MAP: &str = "NETRX_COUNT";
const SUPPRESSED_MAP: &str = "NETRX_SUPPRESSED";
/// Records published per tick at most; the rest wait in the ring for the next tick.
const MAX_RECORDS_PER_TICK: usize = 4096;
const ATTACHMENTS: [Attachment; 3] = [
    Attachment {
        program: "on_netif_receive_skb",
        hook: Hook::TpBtf("netif_receive_skb"),
    },
    Attachment {
        program: "on_tcp_probe",
        hook: Hook::TpBtf("tcp_probe"),
    },
    Attachment {
        program: "on_skb_copy_datagram_iovec",
        hook: Hook::TpBtf("skb_copy_datagram_iovec"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: received TCP packets (IPv4/IPv6) older than a threshold at the netif, TCP or user-copy
/// stage (tp_btf net/netif_receive_skb, tcp/tcp_probe, skb/skb_copy_datagram_iovec) ->
/// `net_rx_latency` documents (stage, latency, netdev, netns, 4-tuple, seq/ack, comm/pid at the
/// user copy) and huatuo_bamai_net_rx_latency_total{stage}. Turns on the kernel's RX software
/// timestamps while it runs (as upstream).
pub struct NetRxLatencyConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Ring buffer drain period: a late packet is published within one interval.
    pub interval_ms: u64,
    /// Age at net:netif_receive_skb that counts as late, in ms (upstream's
    /// EventTracing.NetRxLatency.Driver2NetRx).
    pub netif_threshold_ms: u64,
    /// Age at TCP (tcp:tcp_probe) that counts as late, in ms (upstream's Driver2TCP).
    pub tcp_threshold_ms: u64,
    /// Age when the receiver copies the data (skb:skb_copy_datagram_iovec), in ms (upstream's
    /// Driver2Userspace).
    pub usercopy_threshold_ms: u64,
    /// Ignore packets of the host's network namespace (upstream's ExcludedHostNetnamespace).
    pub excluded_host_netns: bool,
    /// Skip documents of containers with these QoS classes (`guaranteed`, `burstable`,
    /// `besteffort`; upstream's ExcludedContainerQos). They are still counted.
    pub excluded_container_qos: Vec<String>,
    /// In-kernel rate limit: records queued per second, all stages together (upstream: 100;
    /// 0 = no limit). Every late packet is still counted; the rest count as suppressed.
    pub max_events_per_second: u32,
}

impl Default for NetRxLatencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            netif_threshold_ms: 5,
            tcp_threshold_ms: 10,
            usercopy_threshold_ms: 115,
            excluded_host_netns: true,
            excluded_container_qos: Vec::new(),
            max_events_per_second: 100,
        }
    }
}

impl NetRxLatencyConfig {
    /// The threshold of `stage`, in ms.
    pub fn threshold_ms(&self, stage: Stage) -> u64 {
        match stage {
            Stage::Netif => self.netif_threshold_ms,
            Stage::Tcp => self.tcp_threshold_ms,
            Stage::Usercopy => self.usercopy_threshold_ms,
        }
    }
}

/// Thresholds up to an hour: anything longer is a typo (and ms × 10^6 must fit the kernel's u64).
const MAX_THRESHOLD_MS: u64 = 3_600_000;

crate::probe_settings!(
    NetRxLatencyConfig,
    "net_rx_latency",
    |c: &NetRxLatencyConfig| {
        for (key, value) in [
            ("netif_threshold_ms", c.netif_threshold_ms),
            ("tcp_threshold_ms", c.tcp_threshold_ms),
            ("usercopy_threshold_ms", c.usercopy_threshold_ms),
        ] {
            if value == 0 || value > MAX_THRESHOLD_MS {
                return Err(format!(
                    "{key} must be between 1 and {MAX_THRESHOLD_MS} ms (got {value})"
                ));
            }
        }
        for qos in &c.excluded_container_qos {
            if Qos::parse(qos) == Qos::Unknown {
                return Err(format!(
                    "excluded_container_qos: unknown QoS class `{qos}` (known: guaranteed, \
                     burstable, besteffort)"
                ));
            }
        }
        Ok(())
    }
);

/// `struct rx_config` of net_rx_latency.bpf.c (40 bytes, native endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxConfig {
    pub threshold_ns: [u64; 3],
    pub tai_offset_ns: i64,
    pub excluded_netns: u32,
}

impl RxConfig {
    pub fn to_bytes(self) -> [u8; 40] {
        let mut b = [0u8; 40];
        for (i, t) in self.threshold_ns.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&t.to_le_bytes());
        }
        b[24..32].copy_from_slice(&self.tai_offset_ns.to_le_bytes());
        b[32..36].copy_from_slice(&self.excluded_netns.to_le_bytes());
        b
    }
}

/// Network namespace inode of `<procfs>/<pid>/ns/net`.
fn netns_inode(ctx: &ProbeContext, pid: &str) -> Result<u32, ProbeError> {
    use std::os::unix::fs::MetadataExt;
    let path = ctx.procfs(&format!("{pid}/ns/net"));
    let meta = std::fs::metadata(&path).map_err(|source| ProbeError::Read {
        probe: NAME,
        path: path.display().to_string(),
        source,
    })?;
    u32::try_from(meta.ino()).map_err(|_| ProbeError::Parse {
        probe: NAME,
        path: path.display().to_string(),
        reason: format!("inode {} does not fit a netns inum", meta.ino()),
    })
}

/// The host's network namespace: pid 1's (as upstream); the agent's own where pid 1 cannot be
/// inspected (a sandbox that forbids ptrace access to it), as a DaemonSet runs on the host
/// network.
fn host_netns_inode(ctx: &ProbeContext) -> Result<u32, ProbeError> {
    match netns_inode(ctx, "1") {
        Ok(inode) => Ok(inode),
        Err(pid1) => {
            let own = netns_inode(ctx, "self")?;
            tracing::warn!(
                probe = NAME,
                error = %pid1,
                "taking the agent's own network namespace as the host's"
            );
            Ok(own)
        }
    }
}

/// Containers by the inode of their own network namespace (containers on the host network are
/// left out: their packets are the host's), rebuilt when the container set changes.
#[derive(Default)]
struct NetnsContainers {
    of: Option<Arc<ContainerSet>>,
    by_inode: HashMap<u32, Arc<Container>>,
}

impl NetnsContainers {
    fn refresh(&mut self, ctx: &ProbeContext, set: &Arc<ContainerSet>, host: u32) {
        if self.of.as_ref().is_some_and(|of| Arc::ptr_eq(of, set)) {
            return;
        }
        self.by_inode = set
            .iter()
            .filter_map(|c| {
                let inode = netns_inode(ctx, &c.init_pid?.to_string()).ok()?;
                (inode != host).then(|| (inode, c.clone()))
            })
            .collect();
        self.of = Some(set.clone());
    }
}

/// A decoder for [`EventRing::drain`] that counts the records it rejects in `bad`.
pub fn counting_decoder(bad: &Cell<u64>) -> impl Fn(&[u8]) -> Option<RxRecord> + '_ {
    move |bytes| {
        let record = RxRecord::decode(bytes);
        if record.is_none() {
            bad.set(bad.get() + 1);
        }
        record
    }
}

pub struct NetRxLatencyProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    settings: NetRxLatencyConfig,
    config: RxConfig,
    host_netns: u32,
    excluded_qos: Vec<Qos>,
    netns_containers: NetnsContainers,
    undecodable: u64,
    /// Held open for the probe's life: the kernel stamps received packets while it is.
    _timestamps: RxTimestamps,
}

impl Probe for NetRxLatencyProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = NetRxLatencyConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let timestamps = RxTimestamps::enable().map_err(|reason| ProbeError::Unsupported {
            probe: NAME,
            reason,
        })?;
        let host_netns = host_netns_inode(ctx)?;
        let tai_offset_ns = tai_offset_ns().map_err(|reason| ProbeError::Unsupported {
            probe: NAME,
            reason,
        })?;
        let ms = |stage| settings.threshold_ms(stage).saturating_mul(1_000_000);
        let config = RxConfig {
            threshold_ns: [ms(Stage::Netif), ms(Stage::Tcp), ms(Stage::Usercopy)],
            tai_offset_ns,
            excluded_netns: if settings.excluded_host_netns {
                host_netns
            } else {
                0
            },
        };
        let globals = [("max_per_sec", settings.max_events_per_second)];
        let mut bpf = ebpf::load(NAME, crate::bpf_object!("net_rx_latency"), &globals)?;
        // Before attach: with no config the programs ignore every packet.
        write_config(&mut bpf, config)?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            settings: settings.clone(),
            config,
            host_netns,
            excluded_qos: settings
                .excluded_container_qos
                .iter()
                .map(|q| Qos::parse(q))
                .collect(),
            netns_containers: NetnsContainers::default(),
            undecodable: 0,
            _timestamps: timestamps,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        self.follow_tai_offset()?;
        let bad = Cell::new(0);
        let records = self
            .ring
            .drain(MAX_RECORDS_PER_TICK, counting_decoder(&bad));
        if bad.get() > 0 {
            tracing::error!(
                probe = NAME,
                records = bad.get(),
                "ring records that do not decode (BPF/user layout mismatch)"
            );
            self.undecodable += bad.get();
        }
        if !records.is_empty() {
            self.publish(&records);
        }
        self.export(out)
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

fn write_config(bpf: &mut aya::Ebpf, config: RxConfig) -> Result<(), BpfError> {
    let map = CONFIG_MAP;
    let err = |e: aya::maps::MapError| BpfError::MapRead {
        probe: NAME,
        map,
        reason: e.to_string(),
    };
    let data = bpf
        .map_mut(map)
        .ok_or(BpfError::MissingMap { probe: NAME, map })?;
    let mut array =
        aya::maps::Array::<&mut aya::maps::MapData, [u8; 40]>::try_from(data).map_err(err)?;
    array.set(0, config.to_bytes(), 0).map_err(err)
}

impl NetRxLatencyProbe {
    /// A leap second (or chrony setting the offset after start) changes CLOCK_TAI − REALTIME.
    fn follow_tai_offset(&mut self) -> Result<(), ProbeError> {
        let Ok(offset) = tai_offset_ns() else {
            return Ok(());
        };
        if offset != self.config.tai_offset_ns {
            self.config.tai_offset_ns = offset;
            write_config(self.programs.ebpf_mut(), self.config)?;
        }
        Ok(())
    }

    fn publish(&mut self, records: &[RxRecord]) {
        let containers = self.ctx.containers.borrow().clone();
        self.netns_containers
            .refresh(&self.ctx, &containers, self.host_netns);
        for record in records {
            let container = (record.cgroup_id != 0)
                .then(|| containers.by_cgroup_id(record.cgroup_id))
                .flatten()
                .or_else(|| self.netns_containers.by_inode.get(&record.netns));
            if container.is_some_and(|c| self.excluded_qos.contains(&c.qos)) {
                continue;
            }
            let threshold = self.settings.threshold_ms(record.stage);
            let document = event_ring::document_at(
                &self.ctx,
                NAME,
                container.map(|c| c.as_ref()),
                container.map(|c| c.cgroup_id).unwrap_or(record.cgroup_id),
                serde_json::to_value(record.data(threshold)).unwrap_or_default(),
                record.boot_ns,
            );
            self.ctx.events.publish(document);
        }
    }

    fn export(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let family = out.counter(
            "huatuo_bamai_net_rx_latency_total",
            "Received TCP packets older than the stage's threshold at netif (netif_receive_skb), tcp (tcp_probe) or usercopy (skb_copy_datagram_iovec), before the rate limit; cumulative.",
        );
        for stage in Stage::ALL {
            let count = self.programs.per_cpu_sum(COUNT_MAP, stage.index())?;
            family.push(vec![("stage", stage.label().to_string())], count as f64);
        }
        let suppressed = self.programs.per_cpu_sum(SUPPRESSED_MAP, 0)?;
        out.counter(
            "huatuo_bamai_net_rx_latency_suppressed_total",
            "Late packets counted but not stored: over net_rx_latency.max_events_per_second; cumulative.",
        )
        .push(vec![], suppressed as f64);
        let ring_full = self.programs.per_cpu_sum(SUPPRESSED_MAP, 1)?;
        self.ring.account(NAME, ring_full);
        let errors = out.counter(
            "huatuo_bamai_net_rx_latency_errors_total",
            "Late packets lost on the way to a document: no room in the ring buffer (ring_full) or a record that does not decode (undecodable); cumulative.",
        );
        errors.push(vec![("kind", "ring_full".to_string())], ring_full as f64);
        errors.push(
            vec![("kind", "undecodable".to_string())],
            self.undecodable as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
