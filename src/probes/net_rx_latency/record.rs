//! The kernel's record of one late packet (`struct rx_event` of net_rx_latency.bpf.c) and what it
//! becomes in a document: upstream's `NetTracingData` fields.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::probes::common::event_ring::{comm_at, u16_at, u32_at, u64_at};
use crate::probes::common::tcp_names::tcp_state_name;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Where on the receive path the packet's age was taken (STAGE_* of the BPF side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// net:netif_receive_skb: the packet leaves the driver / backlog for the stack.
    Netif,
    /// tcp:tcp_probe: TCP processes the segment for an established socket.
    Tcp,
    /// skb:skb_copy_datagram_iovec: the receiver copies the data to user space.
    Usercopy,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Netif, Stage::Tcp, Stage::Usercopy];

    fn from_index(index: u8) -> Option<Self> {
        Self::ALL.get(usize::from(index)).copied()
    }

    /// Slot of NETRX_CONFIG.threshold_ns and NETRX_COUNT.
    pub fn index(self) -> u32 {
        match self {
            Stage::Netif => 0,
            Stage::Tcp => 1,
            Stage::Usercopy => 2,
        }
    }

    /// The `stage` label of huatuo_bamai_net_rx_latency_total.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Netif => "netif",
            Stage::Tcp => "tcp",
            Stage::Usercopy => "usercopy",
        }
    }

    /// Upstream's `latency_stage`. Upstream's TCP stage is IPv4 only (`RX_STAGE_TCPV4`, a
    /// kprobe on tcp_v4_rcv); an IPv6 segment at the same stage is `RX_STAGE_TCPV6` here.
    pub fn document_name(self, ipv6: bool) -> &'static str {
        match (self, ipv6) {
            (Stage::Netif, _) => "RX_STAGE_NETIF",
            (Stage::Tcp, false) => "RX_STAGE_TCPV4",
            (Stage::Tcp, true) => "RX_STAGE_TCPV6",
            (Stage::Usercopy, _) => "RX_STAGE_USERCOPY",
        }
    }
}

/// The clock of the packet's `skb->tstamp` (enum skb_tstamp_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampClock {
    Realtime,
    Monotonic,
    Tai,
}

/// One `struct rx_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxRecord {
    pub boot_ns: u64,
    pub latency_ns: u64,
    pub cgroup_id: u64,
    pub netns_cookie: u64,
    pub pid: u32,
    pub netns: u32,
    pub len: u32,
    pub seq: u32,
    pub ack_seq: u32,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub stage: Stage,
    pub state: u8,
    pub clock: StampClock,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    pub comm: String,
    pub device: String,
}

impl RxRecord {
    pub const SIZE: usize = 128;

    /// `None` for a record too short or carrying values the BPF side never writes (a layout
    /// mismatch or a garbled record).
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let family = u16_at(b, 52)?;
        let address = |o: usize| -> Option<IpAddr> {
            let raw: [u8; 16] = b.get(o..o + 16)?.try_into().ok()?;
            match family {
                AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
                AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(raw))),
                _ => None,
            }
        };
        Some(Self {
            boot_ns: u64_at(b, 0)?,
            latency_ns: u64_at(b, 8)?,
            cgroup_id: u64_at(b, 16)?,
            netns_cookie: u64_at(b, 24)?,
            pid: u32_at(b, 32)?,
            netns: u32_at(b, 36)?,
            len: u32_at(b, 40)?,
            seq: u32_at(b, 44)?,
            ack_seq: u32_at(b, 48)?,
            family,
            sport: u16_at(b, 54)?,
            dport: u16_at(b, 56)?,
            stage: Stage::from_index(*b.get(58)?)?,
            state: *b.get(59)?,
            clock: match b.get(60)? {
                0 => StampClock::Realtime,
                1 => StampClock::Monotonic,
                2 => StampClock::Tai,
                _ => return None,
            },
            saddr: address(64)?,
            daddr: address(80)?,
            comm: comm_at(b, 96)?,
            device: comm_at(b, 112)?,
        })
    }

    /// `tracer_data` of the document, with `threshold_ms` the stage's configured threshold.
    pub fn data(&self, threshold_ms: u64) -> NetRxLatencyData {
        NetRxLatencyData {
            comm: self.comm.clone(),
            pid: u64::from(self.pid),
            latency_stage: self.stage.document_name(self.family == AF_INET6),
            latency_ms: self.latency_ns as f64 / 1e6,
            latency_threshold_ms: threshold_ms,
            netdev_name: self.device.clone(),
            net_namespace_inum: self.netns,
            net_namespace_cookie: self.netns_cookie,
            tcp_state: tcp_state_name(self.state).unwrap_or("unknown"),
            tcp_saddr: self.saddr.to_string(),
            tcp_daddr: self.daddr.to_string(),
            tcp_sport: self.sport,
            tcp_dport: self.dport,
            tcp_seq: self.seq,
            tcp_ack_seq: self.ack_seq,
            packet_len_bytes: u64::from(self.len),
        }
    }
}

/// `tracer_data` of a `net_rx_latency` document: upstream's `NetTracingData`, same names and
/// JSON types, nothing added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetRxLatencyData {
    /// The receiving task at the usercopy stage; `-` at the other stages (softirq context).
    pub comm: String,
    /// Its tgid; 0 at the other stages.
    pub pid: u64,
    pub latency_stage: &'static str,
    /// now − skb->tstamp, in ms.
    pub latency_ms: f64,
    pub latency_threshold_ms: u64,
    /// The packet's device; `-` without one.
    pub netdev_name: String,
    pub net_namespace_inum: u32,
    /// 0 when unknown.
    pub net_namespace_cookie: u64,
    /// The receiving socket's state (`unknown` at netif, where the socket is not known yet).
    pub tcp_state: &'static str,
    /// The packet's source (the peer) and destination (this host).
    pub tcp_saddr: String,
    pub tcp_daddr: String,
    pub tcp_sport: u16,
    pub tcp_dport: u16,
    pub tcp_seq: u32,
    pub tcp_ack_seq: u32,
    pub packet_len_bytes: u64,
}
