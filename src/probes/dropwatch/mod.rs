//! dropwatch: every packet the kernel drops with a reason (tp_btf `kfree_skb`, the BTF form of
//! `skb:kfree_skb`) becomes a `dropwatch` event document: the drop reason (its name read from
//! the running kernel's `skb/kfree_skb/format`, names vary by version), the drop location
//! (address, and `function+0xoff` from `/proc/kallsyms`), the kernel stack of the drop (taken in
//! the kernel with `bpf_get_stack`, symbolised the same way), the packet's headers (the kernel
//! copies its first 120 bytes; decoded here into upstream's `layers`), the device, netns and
//! socket memcg, and the task current at the drop (pid/comm, cgroup id; the document is
//! attributed to that task's container). `tracer_data` has upstream's field names and types
//! ([`DropwatchData`]). Frees that are not drops (`SKB_CONSUMED`) and drops without a reason
//! (`NOT_SPECIFIED`) are skipped in the kernel.
//!
//! The `protocols`, `ports`, `reasons` and `ignored_reasons` filters are applied in the kernel (maps filled at
//! start); of the drops that pass, the kernel queues at most `max_events_per_second` records a
//! second and counts the rest in `huatuo_bamai_dropwatch_suppressed_total`. Every drop counts
//! in `huatuo_bamai_dropwatch_total{reason}`, before the filters and the rate limit.

mod filter;
pub mod layers;
mod names;
mod reasons;
mod record;

use std::collections::{BTreeMap, HashMap, HashSet};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};

use filter::protocol_number;
use reasons::reason_slots;

pub use crate::probes::common::ksyms::{format_stack, nearest_symbols, Symbolizer};
pub use filter::DropFilter;
pub use reasons::parse_reason_names;
pub use record::DropRecord;

const NAME: &str = "dropwatch";
const EVENTS_MAP: &str = "DROPWATCH_EVENTS";
const SUPPRESSED_MAP: &str = "DROPWATCH_SUPPRESSED";
const REASONS_MAP: &str = "DROPWATCH_REASONS";
const FILTER_PROTOCOLS_MAP: &str = "DROPWATCH_FILTER_PROTOCOLS";
const FILTER_PORTS_MAP: &str = "DROPWATCH_FILTER_PORTS";
const FILTER_REASONS_MAP: &str = "DROPWATCH_FILTER_REASONS";
const IGNORE_REASONS_MAP: &str = "DROPWATCH_IGNORE_REASONS";
/// Entries of DROPWATCH_FILTER_PORTS.
const MAX_PORTS: usize = 1024;
/// Slots of DROPWATCH_REASONS; the last one holds every reason at or above it.
const REASON_SLOTS: u32 = 256;
/// Records handled per tick; the rest wait in the ring buffer for the next tick.
const MAX_DROPS_PER_TICK: usize = 8192;
/// The tracepoint's format below sysfs (tracefs), then below debugfs.
const FORMAT_PATHS: [&str; 2] = [
    "kernel/tracing/events/skb/kfree_skb/format",
    "kernel/debug/tracing/events/skb/kfree_skb/format",
];
const ATTACHMENTS: [Attachment; 1] = [Attachment {
    program: "on_kfree_skb",
    hook: Hook::TpBtf("kfree_skb"),
}];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: packets dropped with a reason (tp_btf skb/kfree_skb; CONSUMED and NOT_SPECIFIED skipped)
/// -> `dropwatch` documents (upstream's fields: reason, location, kernel stack, decoded headers,
/// netns, device, pid/comm) and huatuo_bamai_dropwatch_total{reason},
/// huatuo_bamai_dropwatch_suppressed_total.
pub struct DropwatchConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the ring buffer is drained: a drop is published within one interval.
    pub interval_ms: u64,
    /// Records the kernel queues per second (0: no limit); the rest are counted as suppressed.
    pub max_events_per_second: u32,
    /// Only drops of these L4 protocols (`tcp`, `udp`, `icmp`, `icmpv6`, `sctp`); empty = all.
    /// TCP only by default, as upstream's default pcap filter `tcp`.
    pub protocols: Vec<String>,
    /// Only drops whose source or destination TCP/UDP port is listed; empty = all.
    pub ports: Vec<u16>,
    /// Only drops with these reasons (`NO_SOCKET`, `NETFILTER_DROP`, ...; the
    /// `SKB_DROP_REASON_` prefix is optional); empty = all.
    pub reasons: Vec<String>,
    /// Drops with these reasons are counted but never documented. Default `QUEUE_PURGE`: a
    /// closing socket freeing its queues (every HTTP client closing, a Prometheus scrape
    /// included), not a packet lost.
    pub ignored_reasons: Vec<String>,
}

impl Default for DropwatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            max_events_per_second: 100,
            protocols: vec!["tcp".to_string()],
            ports: Vec::new(),
            reasons: Vec::new(),
            ignored_reasons: vec!["QUEUE_PURGE".to_string()],
        }
    }
}

crate::probe_settings!(DropwatchConfig, "dropwatch", |c: &DropwatchConfig| {
    for name in &c.protocols {
        if protocol_number(name).is_none() {
            return Err(format!(
                "protocols: unknown protocol `{name}` (known: tcp, udp, icmp, icmpv6, sctp)"
            ));
        }
    }
    if c.ports.len() > MAX_PORTS {
        return Err(format!(
            "ports: at most {MAX_PORTS} ports (got {})",
            c.ports.len()
        ));
    }
    Ok(())
});

/// `tracer_data` of a dropwatch document: upstream's `DropWatchTracing` (same names, JSON types
/// and omitted-when-empty fields), plus `drop_reason_code`, `drop_location_symbol`, `tid` and
/// `cgroup_id` of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropwatchData {
    /// When user space decoded the drop (RFC 3339, as upstream's dropwatch tool writes it).
    pub observed_timestamp: String,
    /// Always `software`: hardware (devlink trap) drops are not traced.
    pub drop_source: &'static str,
    /// Reason name as the running kernel prints it (`NO_SOCKET`), or `reason_<n>`.
    pub drop_reason: String,
    pub drop_reason_code: u32,
    /// Where the packet was freed, upstream's `0x%016x` address.
    pub drop_location: String,
    /// The same as `function+0xoff` (the address when unresolvable).
    pub drop_location_symbol: String,
    /// Upstream's source type of an event stream (`events`).
    pub source: &'static str,
    /// The task current at the drop (in softirq context, whichever task was interrupted).
    pub comm: String,
    pub pid: u32,
    pub tid: u32,
    /// The container the document is attributed to (by the current task's cgroup).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    /// `skb->sk->sk_memcg` as `0x%016x`; empty without a socket charged to a memory cgroup.
    pub memory_cgroup_css_addr: String,
    pub cgroup_id: u64,
    /// Of the device's network namespace, else the socket's; 0 when unknown.
    pub net_namespace_cookie: u64,
    pub net_namespace_inum: u32,
    /// `-` without a device.
    pub netdev_name: String,
    pub netdev_ifindex: u32,
    pub netdev_queue_mapping: u32,
    /// `linkstatus_adminup`/`admindown` and `linkstatus_carrierup`/`carrierdown`; `unknown`
    /// without a device.
    pub netdev_linkstatus: Vec<&'static str>,
    pub packet_skb_addr: String,
    /// `skb->protocol` as `0x800`.
    pub packet_eth_proto: String,
    pub packet_len_bytes: u32,
    /// The decoded headers; absent when none decodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<layers::Packet>,
    /// Kernel stack of the drop, innermost frame first, one `function+0xoff` a line (as
    /// upstream: frames joined by newlines), from the function that freed the packet outwards.
    pub stack: String,
    #[serde(flatten)]
    pub columns: DashboardColumns,
}

/// The flat columns upstream's Grafana event dashboard shows for dropwatch (`tracer_data.saddr`,
/// `daddr`, `sport`, `dport`, `state`, `queue_mapping`: its earlier document), which upstream's
/// current document keeps only under `layers`. Ours carries both, so that dashboard's table
/// fills; each is absent when the packet has no such header.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DashboardColumns {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saddr: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daddr: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// The owning socket's state by TCP's names (`SYN_SENT`, `CLOSE` for an unconnected UDP
    /// socket), as `layers.tcp.sk_state`; `unknown` without a socket.
    pub state: String,
    pub queue_mapping: u32,
}

impl DashboardColumns {
    fn of(packet: Option<&layers::Packet>, sk_state: u8, queue_mapping: u32) -> Self {
        let addresses = packet.and_then(|p| {
            p.ipv4
                .as_ref()
                .map(|ip| (ip.saddr, ip.daddr))
                .or_else(|| p.ipv6.as_ref().map(|ip| (ip.saddr, ip.daddr)))
        });
        let ports = packet.and_then(|p| {
            p.tcp
                .as_ref()
                .map(|t| (t.sport, t.dport))
                .or_else(|| p.udp.as_ref().map(|u| (u.sport, u.dport)))
        });
        Self {
            saddr: addresses.map(|a| a.0),
            daddr: addresses.map(|a| a.1),
            sport: ports.map(|p| p.0),
            dport: ports.map(|p| p.1),
            state: layers::tcp_state_name(sk_state),
            queue_mapping,
        }
    }
}

/// The document's `tracer_data` for `record`, with `reason` its name and `symbolizer` holding
/// its addresses.
fn drop_data(
    record: &DropRecord,
    reason: String,
    symbolizer: &Symbolizer,
    container_id: &str,
) -> DropwatchData {
    let packet = layers::parse(
        &record.raw,
        record.raw_is_mac,
        record.l3proto,
        record.sk_state,
    );
    DropwatchData {
        observed_timestamp: crate::events::document::rfc3339(std::time::SystemTime::now()),
        drop_source: "software",
        drop_reason: reason,
        drop_reason_code: record.reason,
        drop_location: kernel_address(record.location),
        drop_location_symbol: symbolizer.get(record.location),
        source: "events",
        comm: record.comm.clone(),
        pid: record.pid,
        tid: record.tid,
        container_id: container_id.to_string(),
        memory_cgroup_css_addr: kernel_address(record.memcg_css),
        cgroup_id: record.cgroup_id,
        net_namespace_cookie: record.netns_cookie,
        net_namespace_inum: record.netns,
        netdev_name: if record.device.is_empty() {
            "-".to_string()
        } else {
            record.device.clone()
        },
        netdev_ifindex: record.ifindex,
        netdev_queue_mapping: record.queue_mapping,
        netdev_linkstatus: if record.device.is_empty() {
            vec!["unknown"]
        } else {
            link_status(record.dev_flags, record.dev_state)
        },
        packet_skb_addr: kernel_address(record.skb_addr),
        packet_eth_proto: format!("{:#x}", record.l3proto),
        packet_len_bytes: record.len,
        layers: packet.clone(),
        stack: symbolizer.stack(&record.stack),
        columns: DashboardColumns::of(packet.as_ref(), record.sk_state, record.queue_mapping),
    }
}

/// Upstream's kernel address text: `0x%016x`, empty for 0.
fn kernel_address(addr: u64) -> String {
    if addr == 0 {
        String::new()
    } else {
        format!("{addr:#018x}")
    }
}

/// Upstream's `netdev_linkstatus` from `dev->flags` and `dev->state`: the carrier counts as up
/// only on a running device with carrier (its `netif_get_flags`).
pub fn link_status(dev_flags: u32, dev_state: u32) -> Vec<&'static str> {
    const IFF_UP: u32 = 0x1;
    const IFF_RUNNING: u32 = 0x40;
    const IFF_LOWER_UP: u32 = 0x1_0000;
    const LINK_STATE_START: u32 = 1 << 0;
    const LINK_STATE_NOCARRIER: u32 = 1 << 2;
    let mut flags = dev_flags & !(IFF_RUNNING | IFF_LOWER_UP);
    if dev_state & LINK_STATE_START != 0 && dev_state & LINK_STATE_NOCARRIER == 0 {
        flags |= IFF_LOWER_UP;
    }
    if flags == 0 {
        return vec!["unknown"];
    }
    vec![
        if flags & IFF_UP != 0 {
            "linkstatus_adminup"
        } else {
            "linkstatus_admindown"
        },
        if flags & IFF_LOWER_UP != 0 {
            "linkstatus_carrierup"
        } else {
            "linkstatus_carrierdown"
        },
    ]
}

fn fill_ports(programs: &mut BpfProgramSet, ports: &HashSet<u16>) -> Result<(), ProbeError> {
    let map = FILTER_PORTS_MAP;
    let err = |e: aya::maps::MapError| {
        ProbeError::Bpf(crate::ebpf::BpfError::MapRead {
            probe: NAME,
            map,
            reason: e.to_string(),
        })
    };
    let data = programs
        .ebpf_mut()
        .map_mut(map)
        .ok_or(crate::ebpf::BpfError::MissingMap { probe: NAME, map })?;
    let mut hash =
        aya::maps::HashMap::<&mut aya::maps::MapData, u16, u8>::try_from(data).map_err(err)?;
    for port in ports {
        hash.insert(port, 1, 0).map_err(err)?;
    }
    Ok(())
}

pub struct DropwatchProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    filter: DropFilter,
    reason_names: HashMap<u32, String>,
    symbolizer: Symbolizer,
}

impl Probe for DropwatchProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = DropwatchConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let reason_names = FORMAT_PATHS
            .iter()
            .find_map(|p| std::fs::read_to_string(ctx.sysfs_root.join(p)).ok())
            .map(|text| parse_reason_names(&text))
            .unwrap_or_default();
        if reason_names.is_empty() {
            tracing::warn!(
                probe = NAME,
                "skb/kfree_skb format not readable: drop reasons are reported as numbers"
            );
        }
        let filter = DropFilter::new(settings);
        let ignored_slots = reason_slots(&reason_names, &settings.ignored_reasons);
        let reason_slots = reason_slots(&reason_names, &settings.reasons);
        let flag = |on: bool| u32::from(on);
        let bpf = ebpf::load(
            NAME,
            crate::bpf_object!("dropwatch"),
            &[
                ("max_per_sec", settings.max_events_per_second),
                ("filter_protocols", flag(!filter.protocols.is_empty())),
                ("filter_ports", flag(!filter.ports.is_empty())),
                ("filter_reasons", flag(!settings.reasons.is_empty())),
            ],
        )?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        // The filter maps start empty: until they are filled nothing passes an active filter.
        for protocol in &filter.protocols {
            programs.set_u32(FILTER_PROTOCOLS_MAP, u32::from(*protocol), 1)?;
        }
        for slot in reason_slots {
            programs.set_u32(FILTER_REASONS_MAP, slot, 1)?;
        }
        for slot in ignored_slots {
            programs.set_u32(IGNORE_REASONS_MAP, slot, 1)?;
        }
        fill_ports(&mut programs, &filter.ports)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            filter,
            reason_names,
            symbolizer: Symbolizer::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self.ring.drain(MAX_DROPS_PER_TICK, DropRecord::decode);
        if !records.is_empty() {
            let containers = self.ctx.containers.borrow().clone();
            let kept: Vec<DropRecord> = records
                .into_iter()
                .filter(|r| self.filter.accepts(r, &self.reason_name(r.reason)))
                .collect();
            let addresses: Vec<u64> = kept
                .iter()
                .flat_map(|r| std::iter::once(r.location).chain(r.stack.iter().copied()))
                .collect();
            self.symbolizer
                .resolve(&self.ctx.procfs("kallsyms"), &addresses);
            for record in &kept {
                let container = containers
                    .by_cgroup_id(record.cgroup_id)
                    .map(|c| c.as_ref());
                let id = container.map(|c| c.id.as_str()).unwrap_or_default();
                let reason = self.reason_name(record.reason);
                let data = drop_data(record, reason, &self.symbolizer, id);
                let document = event_ring::document_at(
                    &self.ctx,
                    NAME,
                    container,
                    record.cgroup_id,
                    serde_json::to_value(&data).unwrap_or_default(),
                    record.boot_ns,
                );
                self.ctx.events.publish(document);
            }
        }
        self.export(out)
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl DropwatchProbe {
    fn reason_name(&self, reason: u32) -> String {
        self.reason_names
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("reason_{reason}"))
    }

    fn total(&self, map: &'static str, index: u32) -> Result<u64, ProbeError> {
        Ok(self.programs.per_cpu_sum(map, index)?)
    }

    fn export(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for slot in 0..REASON_SLOTS {
            let count = self.total(REASONS_MAP, slot)?;
            if count == 0 {
                continue;
            }
            let name = if slot == REASON_SLOTS - 1 {
                "subsystem".to_string()
            } else {
                self.reason_name(slot)
            };
            *by_reason.entry(name).or_default() += count;
        }
        let family = out.counter(
            "huatuo_bamai_dropwatch_total",
            "Packets dropped with a reason (skb:kfree_skb), before the rate limit and filters; cumulative.",
        );
        for (reason, count) in by_reason {
            family.push(vec![("reason", reason)], count as f64);
        }
        let suppressed = self.total(SUPPRESSED_MAP, 0)?;
        let lost = self.total(SUPPRESSED_MAP, 1)?;
        out.counter(
            "huatuo_bamai_dropwatch_suppressed_total",
            "Drops without a document: over max_events_per_second, or no room in the ring buffer; cumulative.",
        )
        .push(vec![], suppressed.wrapping_add(lost) as f64);
        // Ring-full losses are already in the suppressed counter; this logs them and bad records.
        self.ring.account(NAME, lost);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
