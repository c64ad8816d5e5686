//! The kernel's record of one retransmission (`struct retransmit_event` of tcp_retransmit.bpf.c)
//! and what it becomes in a document: upstream's `tcp_*` fields, the reason class and phase.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::probes::common::tcp_names::{tcp_flag_names, tcp_state_name};

use crate::probes::common::event_ring::{comm_at, u16_at, u32_at, u64_at};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `TCP_CA_Recovery` / `TCP_CA_Loss` of `enum tcp_ca_state`.
const TCP_CA_RECOVERY: u8 = 3;
const TCP_CA_LOSS: u8 = 4;
/// `ICSK_TIME_LOSS_PROBE` of `icsk_pending`: the tail loss probe timer (include/net/
/// inet_connection_sock.h). tcp_write_timer_handler clears `icsk_pending` before running the
/// RTO handler but only after the probe is sent for this one, so a retransmit seen with it
/// set is the probe's.
const ICSK_TIME_LOSS_PROBE: u8 = 5;

/// Upstream's `event_type`: the tracepoint the retransmission came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// tcp:tcp_retransmit_skb: a data (or SYN/FIN) segment sent again.
    #[serde(rename = "tcp_retransmit_skb")]
    Skb,
    /// tcp:tcp_retransmit_synack: a listener's SYN-ACK sent again.
    #[serde(rename = "tcp_retransmit_synack")]
    Synack,
}

/// One `struct retransmit_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetransmitRecord {
    pub boot_ns: u64,
    pub cgroup_id: u64,
    pub skb_addr: u64,
    pub pid: u32,
    pub netns: u32,
    pub seq: u32,
    pub end_seq: u32,
    pub ack_seq: u32,
    pub reord_seen: u32,
    pub dsack_dups: u32,
    pub err: i32,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u16,
    pub state: u8,
    pub ca_state: u8,
    pub icsk_pending: u8,
    pub icsk_retransmits: u8,
    pub kind: Kind,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub comm: String,
    /// `sk->sk_memcg` (0 without memcg accounting).
    pub memcg_css: u64,
    pub netns_cookie: u64,
    /// When the kernel last dropped a segment of this flow (either direction), 0 if never.
    pub drop_boot_ns: u64,
}

impl RetransmitRecord {
    pub const SIZE: usize = 144;

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let addr = |o: usize| -> Option<[u8; 16]> { b.get(o..o + 16)?.try_into().ok() };
        Some(Self {
            boot_ns: u64_at(b, 0)?,
            cgroup_id: u64_at(b, 8)?,
            skb_addr: u64_at(b, 16)?,
            pid: u32_at(b, 24)?,
            netns: u32_at(b, 28)?,
            seq: u32_at(b, 32)?,
            end_seq: u32_at(b, 36)?,
            ack_seq: u32_at(b, 40)?,
            reord_seen: u32_at(b, 44)?,
            dsack_dups: u32_at(b, 48)?,
            err: u32_at(b, 52)? as i32,
            family: u16_at(b, 56)?,
            sport: u16_at(b, 58)?,
            dport: u16_at(b, 60)?,
            tcp_flags: u16_at(b, 62)?,
            state: *b.get(64)?,
            ca_state: *b.get(65)?,
            icsk_pending: *b.get(66)?,
            icsk_retransmits: *b.get(67)?,
            kind: match b.get(68)? {
                0 => Kind::Skb,
                1 => Kind::Synack,
                _ => return None,
            },
            saddr: addr(72)?,
            daddr: addr(88)?,
            comm: comm_at(b, 104)?,
            memcg_css: u64_at(b, 120)?,
            netns_cookie: u64_at(b, 128)?,
            drop_boot_ns: u64_at(b, 136)?,
        })
    }

    fn address(&self, raw: &[u8; 16]) -> Option<IpAddr> {
        match self.family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
            _ => None,
        }
    }

    /// Upstream's `tcp_reason` (its tcpshark's classifySKBReason): a retransmit in loss state is
    /// the RTO timer's, one in recovery a fast retransmit (reorder-prone once the connection saw
    /// reordering or D-SACKs); otherwise the tail loss probe timer's when it is the one running,
    /// and in set-up or teardown the RTO's.
    pub fn reason(&self) -> &'static str {
        match (self.kind, self.ca_state) {
            (Kind::Synack, _) => "RTO",
            (Kind::Skb, TCP_CA_LOSS) => "RTO",
            (Kind::Skb, TCP_CA_RECOVERY) if self.reord_seen > 0 || self.dsack_dups > 0 => {
                "reorder_prone_fast"
            }
            (Kind::Skb, TCP_CA_RECOVERY) => "fast_retransmit",
            _ if self.icsk_pending == ICSK_TIME_LOSS_PROBE => "TLP",
            _ if self.phase() != "data" => "RTO",
            _ => "unknown",
        }
    }

    /// Upstream's `drop_location`: `host_software` when this host's stack dropped a segment of
    /// the flow within `window_ns` before the retransmit, else `network_or_host_hardware`;
    /// `None` when the correlation is off (`window_ns` 0).
    pub fn drop_location(&self, window_ns: u64) -> Option<&'static str> {
        if window_ns == 0 {
            return None;
        }
        let recent = self.drop_boot_ns != 0
            && self.drop_boot_ns <= self.boot_ns
            && self.boot_ns - self.drop_boot_ns <= window_ns;
        Some(if recent {
            "host_software"
        } else {
            "network_or_host_hardware"
        })
    }

    /// Upstream's `phase`: connection set-up, data transfer or teardown.
    pub fn phase(&self) -> &'static str {
        match self.state {
            2 | 3 | 12 => "connect", // SYN_SENT, SYN_RECV, NEW_SYN_RECV
            1 => "data",             // ESTABLISHED
            _ => "close",
        }
    }

    pub fn data(&self) -> RetransmitData {
        let text = |a: Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        RetransmitData {
            observed_timestamp: crate::events::document::rfc3339(std::time::SystemTime::now()),
            source: "events",
            tcp_reason: self.reason(),
            event_type: self.kind,
            phase: self.phase(),
            comm: self.comm.clone(),
            pid: self.pid,
            container_id: None,
            memory_cgroup_css_addr: (self.memcg_css != 0).then(|| format!("{:#x}", self.memcg_css)),
            net_namespace_cookie: (self.netns_cookie != 0).then_some(self.netns_cookie),
            net_namespace_inum: self.netns,
            tcp_state: tcp_state_name(self.state).unwrap_or("unknown"),
            tcp_saddr: text(self.address(&self.saddr)),
            tcp_daddr: text(self.address(&self.daddr)),
            tcp_sport: self.sport,
            tcp_dport: self.dport,
            tcp_seq: self.seq,
            tcp_end_seq: self.end_seq,
            tcp_ack_seq: self.ack_seq,
            // The TCPHDR_* bits of `tcp_skb_cb.tcp_flags` are the header's flag bits.
            tcp_flags: tcp_flag_names(self.tcp_flags),
            ca_state: self.ca_state,
            ca_state_name: ca_state_name(self.ca_state),
            icsk_retransmits: self.icsk_retransmits,
            icsk_pending: self.icsk_pending,
            reord_seen: self.reord_seen,
            dsack_dups: self.dsack_dups,
            skb_addr: format!("{:#x}", self.skb_addr),
            drop_location: None,
            retransmit_error: self.err,
        }
    }
}

/// `tracer_data` of a `tcp_retransmit` document: upstream's `TCPRetransmitTracing` (names and
/// types, `omitempty` fields left out when empty), plus `ca_state_name` and
/// `retransmit_error` of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetransmitData {
    /// When user space decoded the record (RFC 3339, as upstream's tcpshark writes it).
    pub observed_timestamp: String,
    /// Upstream's source type of an event stream (`events`).
    pub source: &'static str,
    pub tcp_reason: &'static str,
    pub event_type: Kind,
    pub phase: &'static str,
    pub comm: String,
    pub pid: u32,
    /// The socket's container (omitted on the host, as upstream's `omitempty`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// `sk->sk_memcg` as upstream's kernel address text; omitted without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_cgroup_css_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_namespace_cookie: Option<u64>,
    pub net_namespace_inum: u32,
    pub tcp_state: &'static str,
    pub tcp_saddr: String,
    pub tcp_daddr: String,
    pub tcp_sport: u16,
    pub tcp_dport: u16,
    pub tcp_seq: u32,
    pub tcp_end_seq: u32,
    pub tcp_ack_seq: u32,
    pub tcp_flags: String,
    /// `icsk_ca_state` as the number upstream stores (0 open, 3 recovery, 4 loss).
    pub ca_state: u8,
    /// The same by name (`open`, `disorder`, `cwr`, `recovery`, `loss`).
    pub ca_state_name: &'static str,
    pub icsk_retransmits: u8,
    pub icsk_pending: u8,
    pub reord_seen: u32,
    pub dsack_dups: u32,
    pub skb_addr: String,
    /// `host_software` / `network_or_host_hardware` ([`RetransmitRecord::drop_location`]);
    /// omitted when `drop_window_ms` is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_location: Option<&'static str>,
    /// What the kernel's retransmit returned (0: sent; negative errno: not sent). Ours.
    pub retransmit_error: i32,
}

fn ca_state_name(state: u8) -> &'static str {
    match state {
        0 => "open",
        1 => "disorder",
        2 => "cwr",
        3 => "recovery",
        4 => "loss",
        _ => "unknown",
    }
}
