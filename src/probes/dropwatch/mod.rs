//! dropwatch: every packet the kernel drops with a reason (tp_btf `kfree_skb`, the BTF form of
//! `skb:kfree_skb`) becomes a `dropwatch` event document: the drop reason (its name read from
//! the running kernel's `skb/kfree_skb/format`, names vary by version), the drop location
//! (`function+0xoff` from `/proc/kallsyms`), the kernel stack of the drop (taken in the kernel
//! with `bpf_get_stack`, symbolised the same way), the decoded L3/L4 header (addresses,
//! protocol, TCP/UDP ports), the device and netns, and the task current at the drop (pid/comm,
//! cgroup id; the document is attributed to that task's container). Frees that are not drops
//! (`SKB_CONSUMED`) and drops without a reason (`NOT_SPECIFIED`) are skipped in the kernel.
//!
//! The `protocols`, `ports` and `reasons` filters are applied in the kernel (maps filled at
//! start); of the drops that pass, the kernel queues at most `max_events_per_second` records a
//! second and counts the rest in `huatuo_bamai_dropwatch_suppressed_total`. Every drop counts
//! in `huatuo_bamai_dropwatch_total{reason}`, before the filters and the rate limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};

const NAME: &str = "dropwatch";
const EVENTS_MAP: &str = "DROPWATCH_EVENTS";
const SUPPRESSED_MAP: &str = "DROPWATCH_SUPPRESSED";
const REASONS_MAP: &str = "DROPWATCH_REASONS";
const FILTER_PROTOCOLS_MAP: &str = "DROPWATCH_FILTER_PROTOCOLS";
const FILTER_PORTS_MAP: &str = "DROPWATCH_FILTER_PORTS";
const FILTER_REASONS_MAP: &str = "DROPWATCH_FILTER_REASONS";
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
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Protocol names of the `protocols` filter and of `tracer_data.protocol`.
const PROTOCOLS: [(&str, u8); 5] = [
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("icmpv6", 58),
    ("sctp", 132),
];
const ATTACHMENTS: [Attachment; 1] = [Attachment {
    program: "on_kfree_skb",
    hook: Hook::TpBtf("kfree_skb"),
}];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: packets dropped with a reason (tp_btf skb/kfree_skb; CONSUMED and NOT_SPECIFIED skipped)
/// -> `dropwatch` documents (reason, location, kernel stack, decoded L3/L4 header, netns, device,
/// pid/comm) and huatuo_bamai_dropwatch_total{reason}, huatuo_bamai_dropwatch_suppressed_total.
pub struct DropwatchConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the ring buffer is drained: a drop is published within one interval.
    pub interval_ms: u64,
    /// Records the kernel queues per second (0: no limit); the rest are counted as suppressed.
    pub max_events_per_second: u32,
    /// Only drops of these L4 protocols (`tcp`, `udp`, `icmp`, `icmpv6`, `sctp`); empty = all.
    pub protocols: Vec<String>,
    /// Only drops whose source or destination TCP/UDP port is listed; empty = all.
    pub ports: Vec<u16>,
    /// Only drops with these reasons (`NO_SOCKET`, `NETFILTER_DROP`, ...; the
    /// `SKB_DROP_REASON_` prefix is optional); empty = all.
    pub reasons: Vec<String>,
}

impl Default for DropwatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            max_events_per_second: 100,
            protocols: Vec::new(),
            ports: Vec::new(),
            reasons: Vec::new(),
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

fn protocol_number(name: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

fn protocol_name(number: u8) -> String {
    PROTOCOLS
        .iter()
        .find(|(_, v)| *v == number)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| number.to_string())
}

/// A reason name as the filter compares it: upper case without `SKB_DROP_REASON_`.
fn normalize_reason(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper
        .strip_prefix("SKB_DROP_REASON_")
        .unwrap_or(&upper)
        .to_string()
}

/// Reason names from the `__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, ...)` of the
/// tracepoint's format file.
pub fn parse_reason_names(format: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    let Some(start) = format.find("__print_symbolic(") else {
        return names;
    };
    for entry in format[start..].split('{').skip(1) {
        let Some((body, _)) = entry.split_once('}') else {
            continue;
        };
        let Some((value, name)) = body.split_once(',') else {
            continue;
        };
        let value = value.trim();
        let value = match value.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        };
        let name = name.trim().trim_matches('"');
        if let (Some(value), false) = (value, name.is_empty()) {
            names.insert(value, name.to_string());
        }
    }
    names
}

/// One `struct drop_event` of dropwatch.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRecord {
    pub boot_ns: u64,
    pub location: u64,
    pub cgroup_id: u64,
    pub reason: u32,
    pub pid: u32,
    pub tid: u32,
    pub netns: u32,
    pub ifindex: u32,
    /// `skb->protocol` (ethertype).
    pub l3proto: u16,
    pub l4proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub comm: String,
    pub device: String,
    /// Kernel stack of the drop: return addresses, innermost first (the tracing glue included).
    pub stack: Vec<u64>,
}

impl DropRecord {
    /// The fixed part; the stack's frames follow it (`stack_bytes` of them).
    pub const SIZE: usize = 128;
    const STACK_OFFSET: usize = 128;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
        Some(Self {
            boot_ns: event_ring::u64_at(bytes, 0)?,
            location: event_ring::u64_at(bytes, 8)?,
            cgroup_id: event_ring::u64_at(bytes, 16)?,
            reason: event_ring::u32_at(bytes, 24)?,
            pid: event_ring::u32_at(bytes, 28)?,
            tid: event_ring::u32_at(bytes, 32)?,
            netns: event_ring::u32_at(bytes, 36)?,
            ifindex: event_ring::u32_at(bytes, 40)?,
            l3proto: u16_at(44)?,
            l4proto: bytes[46],
            sport: u16_at(48)?,
            dport: u16_at(50)?,
            saddr: bytes[56..72].try_into().ok()?,
            daddr: bytes[72..88].try_into().ok()?,
            comm: event_ring::comm_at(bytes, 88)?,
            device: event_ring::comm_at(bytes, 104)?,
            stack: {
                let stack_bytes = event_ring::u32_at(bytes, 120)? as usize;
                let end = bytes.len().min(Self::STACK_OFFSET + stack_bytes);
                bytes
                    .get(Self::STACK_OFFSET..end)
                    .unwrap_or_default()
                    .chunks_exact(8)
                    .filter_map(|frame| frame.try_into().ok().map(u64::from_le_bytes))
                    .filter(|addr| *addr != 0)
                    .collect()
            },
        })
    }

    fn address(&self, raw: &[u8; 16]) -> Option<IpAddr> {
        match self.l3proto {
            ETH_P_IP => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
            ETH_P_IPV6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
            _ => None,
        }
    }

    fn decoded(&self) -> bool {
        matches!(self.l3proto, ETH_P_IP | ETH_P_IPV6) && self.l4proto != 0
    }
}

/// `tracer_data` of a dropwatch document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropwatchData {
    /// Reason name as the running kernel prints it (`NO_SOCKET`), or `reason_<n>`.
    pub reason: String,
    pub reason_code: u32,
    /// Where the packet was freed: `function+0xoff`, or the address when unresolvable.
    pub location: String,
    /// `ipv4`, `ipv6`, or the ethertype in hex.
    pub family: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub saddr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub daddr: String,
    /// TCP/UDP ports (0 for other protocols).
    pub sport: u16,
    pub dport: u16,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp` or the IP protocol number; empty when not IP.
    pub protocol: String,
    /// Inode of the network namespace (of the device, else of the socket); 0 when unknown.
    pub netns: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub device: String,
    pub ifindex: u32,
    /// The task current at the drop (in softirq context, whichever task was interrupted).
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    /// Kernel stack of the drop, innermost frame first, one `function+0xoff` a line (as
    /// upstream: frames joined by newlines), from the function that freed the packet outwards.
    pub stack: String,
}

/// The configured filters (applied in the kernel; [`DropFilter::accepts`] is the same test in
/// user space).
#[derive(Debug, Default)]
pub struct DropFilter {
    protocols: HashSet<u8>,
    ports: HashSet<u16>,
    reasons: HashSet<String>,
}

impl DropFilter {
    pub fn new(config: &DropwatchConfig) -> Self {
        Self {
            protocols: config
                .protocols
                .iter()
                .filter_map(|p| protocol_number(p))
                .collect(),
            ports: config.ports.iter().copied().collect(),
            reasons: config.reasons.iter().map(|r| normalize_reason(r)).collect(),
        }
    }

    pub fn accepts(&self, record: &DropRecord, reason: &str) -> bool {
        (self.protocols.is_empty() || self.protocols.contains(&record.l4proto))
            && (self.ports.is_empty()
                || self.ports.contains(&record.sport)
                || self.ports.contains(&record.dport))
            && (self.reasons.is_empty() || self.reasons.contains(&normalize_reason(reason)))
    }
}

/// Kernel text addresses → `function+0xoff`, resolved from kallsyms and cached (drop locations
/// are a small set).
#[derive(Debug, Default)]
pub struct Symbolizer {
    cache: HashMap<u64, String>,
}

impl Symbolizer {
    /// Resolves every address of `addrs` not cached yet with one pass over `kallsyms`.
    pub fn resolve(&mut self, kallsyms: &std::path::Path, addrs: &[u64]) {
        let missing: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !self.cache.contains_key(a))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return;
        }
        let text = std::fs::read_to_string(kallsyms).unwrap_or_default();
        for (addr, name) in missing.iter().zip(nearest_symbols(&text, &missing)) {
            let resolved = match name {
                Some((start, name)) => format!("{name}+{:#x}", addr - start),
                None => format!("{addr:#x}"),
            };
            self.cache.insert(*addr, resolved);
        }
    }

    pub fn get(&self, addr: u64) -> String {
        self.cache
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| format!("{addr:#x}"))
    }

    /// A kernel stack as upstream's `stack`: one resolved frame a line, innermost first, without
    /// the frames of the tracepoint machinery and of this program above the drop.
    pub fn stack(&self, frames: &[u64]) -> String {
        let frames: Vec<String> = frames.iter().map(|a| self.get(*a)).collect();
        format_stack(&frames)
    }
}

/// Frames of the tracing machinery `bpf_get_stack` sees above the tracepoint's caller: the BPF
/// program itself, `bpf_trace_run<N>`, `__bpf_trace_<tp>` and `__traceiter_<tp>`.
fn is_tracing_frame(frame: &str) -> bool {
    [
        "bpf_prog_",
        "bpf_trace_run",
        "__bpf_trace_",
        "__traceiter_",
        "bpf_trampoline_",
    ]
    .iter()
    .any(|prefix| frame.starts_with(prefix))
}

/// Joins resolved frames (innermost first) with newlines, leaving out the leading tracing
/// frames; a stack of nothing but tracing frames is kept whole rather than emptied.
pub fn format_stack(frames: &[String]) -> String {
    let first = frames
        .iter()
        .position(|f| !is_tracing_frame(f))
        .unwrap_or(0);
    frames[first..].join("\n")
}

/// For each of `addrs`, the text symbol (start, name) at or below it in a kallsyms text.
pub fn nearest_symbols(kallsyms: &str, addrs: &[u64]) -> Vec<Option<(u64, String)>> {
    // Sorted once, then one binary search per address: a stack brings dozens of addresses.
    let mut symbols: Vec<(u64, &str)> = kallsyms
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (addr, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
            if !matches!(kind, "t" | "T" | "w" | "W") {
                return None;
            }
            let start = u64::from_str_radix(addr, 16).ok()?;
            (start != 0).then_some((start, name))
        })
        .collect();
    // Among symbols at one address the first listed wins, as a linear scan would pick.
    symbols.sort_by_key(|(start, _)| *start);
    addrs
        .iter()
        .map(|target| {
            let below = symbols.partition_point(|(start, _)| start <= target);
            let (start, _) = *symbols.get(below.checked_sub(1)?)?;
            let first = symbols.partition_point(|(s, _)| *s < start);
            symbols.get(first).map(|(s, n)| (*s, n.to_string()))
        })
        .collect()
}

/// DROPWATCH_REASONS slots of the configured reason names; names the running kernel does not
/// have are logged and match nothing.
fn reason_slots(names: &HashMap<u32, String>, wanted: &[String]) -> Vec<u32> {
    let mut slots = Vec::new();
    for name in wanted {
        let name = normalize_reason(name);
        let found: Vec<u32> = names
            .iter()
            .filter(|(_, n)| normalize_reason(n) == name)
            .map(|(code, _)| (*code).min(REASON_SLOTS - 1))
            .collect();
        if found.is_empty() {
            tracing::warn!(probe = NAME, reason = %name, "drop reason unknown to this kernel");
        }
        slots.extend(found);
    }
    slots
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
                let data = self.data(record);
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

    fn data(&self, record: &DropRecord) -> DropwatchData {
        let address = |raw| {
            record
                .address(raw)
                .map(|a| a.to_string())
                .unwrap_or_default()
        };
        DropwatchData {
            reason: self.reason_name(record.reason),
            reason_code: record.reason,
            location: self.symbolizer.get(record.location),
            family: match record.l3proto {
                ETH_P_IP => "ipv4".to_string(),
                ETH_P_IPV6 => "ipv6".to_string(),
                other => format!("{other:#06x}"),
            },
            saddr: address(&record.saddr),
            daddr: address(&record.daddr),
            sport: record.sport,
            dport: record.dport,
            protocol: if record.decoded() {
                protocol_name(record.l4proto)
            } else {
                String::new()
            },
            netns: record.netns,
            device: record.device.clone(),
            ifindex: record.ifindex,
            pid: record.pid,
            tid: record.tid,
            comm: record.comm.clone(),
            cgroup_id: record.cgroup_id,
            stack: self.symbolizer.stack(&record.stack),
        }
    }

    fn total(&self, map: &'static str, index: u32) -> Result<u64, ProbeError> {
        Ok(self
            .programs
            .per_cpu_u64(map, index)?
            .iter()
            .fold(0u64, |a, v| a.wrapping_add(*v)))
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
