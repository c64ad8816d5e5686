//! The dropped packet's headers decoded from the bytes the kernel copied: upstream's `layers`
//! object (its `internal/packet` types, filled there by gopacket), with the same JSON names,
//! the same omitted-when-empty fields and gopacket's names for protocols and ICMP types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::names::{ethertype_name, icmp_type_code, ip_protocol_name};
use crate::probes::common::tcp_names;

const ETHER_HEADER: usize = 14;
pub(super) const ETH_P_IP: u16 = 0x0800;
pub(super) const ETH_P_ARP: u16 = 0x0806;
pub(super) const ETH_P_IPV6: u16 = 0x86dd;

/// `layers`: one optional member per decoded layer, `label` naming the combination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Packet {
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ether: Option<Ether>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Tcp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<Udp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<Icmp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<Arp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ether {
    pub saddr: String,
    pub daddr: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ipv4 {
    pub version: u8,
    pub ihl: u8,
    pub tos: u8,
    pub len: u16,
    pub id: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub flags: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub frag_offset: u16,
    pub ttl: u8,
    pub protocol: String,
    pub checksum: u16,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ipv6 {
    pub version: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub len: u16,
    pub next_header: String,
    pub hop_limit: u8,
    pub saddr: IpAddr,
    pub daddr: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack_seq: u32,
    pub data_offset: u8,
    pub flags: String,
    pub window: u16,
    pub checksum: u16,
    #[serde(skip_serializing_if = "is_zero")]
    pub urgent: u16,
    /// State of the socket owning the packet (from the kernel, not the wire); `unknown` without.
    pub sk_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Udp {
    pub sport: u16,
    pub dport: u16,
    pub len: u16,
    pub checksum: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Icmp {
    #[serde(rename = "type")]
    pub kind: String,
    pub code: u8,
    pub checksum: u16,
    #[serde(skip_serializing_if = "is_zero")]
    pub id: u16,
    #[serde(skip_serializing_if = "is_zero")]
    pub seq: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arp {
    pub addr_type: String,
    pub protocol: String,
    pub hw_address_size: u8,
    pub prot_address_size: u8,
    pub operation: String,
    pub sender_mac: String,
    pub sender_ip: String,
    pub target_mac: String,
    pub target_ip: String,
}

fn is_zero(value: &u16) -> bool {
    *value == 0
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Decodes `raw` (from the Ethernet header when `from_mac`, else from the network header of
/// ethertype `eth_proto`). `None` when no IP, ARP or L4 layer decodes, as upstream leaves
/// `layers` out then; a header cut short ends the decoding at the layer before it.
pub fn parse(raw: &[u8], from_mac: bool, eth_proto: u16, sk_state: u8) -> Option<Packet> {
    let mut packet = Packet {
        label: String::new(),
        ether: None,
        ipv4: None,
        ipv6: None,
        tcp: None,
        udp: None,
        icmp: None,
        arp: None,
    };
    let (proto, l3) = if from_mac {
        let header = raw.get(..ETHER_HEADER)?;
        let kind = be16(header, 12)?;
        packet.ether = Some(Ether {
            saddr: mac(&header[6..12]),
            daddr: mac(&header[0..6]),
            kind: ethertype_name(kind),
        });
        (kind, &raw[ETHER_HEADER..])
    } else {
        (eth_proto, raw)
    };
    let l4 = match proto {
        ETH_P_IP => parse_ipv4(l3, &mut packet),
        ETH_P_IPV6 => parse_ipv6(l3, &mut packet),
        ETH_P_ARP => {
            packet.arp = parse_arp(l3);
            None
        }
        _ => None,
    };
    if let Some((protocol, payload)) = l4 {
        let v6 = packet.ipv6.is_some();
        match protocol {
            6 => packet.tcp = parse_tcp(payload, sk_state),
            17 => packet.udp = parse_udp(payload),
            1 if !v6 => packet.icmp = parse_icmp(payload, false),
            58 if v6 => packet.icmp = parse_icmp(payload, true),
            _ => {}
        }
    }
    if packet.ipv4.is_none()
        && packet.ipv6.is_none()
        && packet.arp.is_none()
        && packet.tcp.is_none()
        && packet.udp.is_none()
        && packet.icmp.is_none()
    {
        return None;
    }
    packet.label = label(&packet);
    Some(packet)
}

/// The IPv4 layer; the L4 protocol and payload when the packet is not a fragment.
fn parse_ipv4<'a>(bytes: &'a [u8], packet: &mut Packet) -> Option<(u8, &'a [u8])> {
    let header = bytes.get(..20)?;
    let (version, ihl) = (header[0] >> 4, header[0] & 0x0f);
    if version != 4 || ihl < 5 {
        return None;
    }
    let flags_offset = be16(header, 6)?;
    let (flags, frag_offset) = ((flags_offset >> 13) as u8, flags_offset & 0x1fff);
    let address = |at: usize| {
        IpAddr::V4(Ipv4Addr::new(
            header[at],
            header[at + 1],
            header[at + 2],
            header[at + 3],
        ))
    };
    let protocol = header[9];
    packet.ipv4 = Some(Ipv4 {
        version,
        ihl,
        tos: header[1],
        len: be16(header, 2)?,
        id: be16(header, 4)?,
        flags: ipv4_flags(flags),
        frag_offset,
        ttl: header[8],
        protocol: ip_protocol_name(protocol),
        checksum: be16(header, 10)?,
        saddr: address(12),
        daddr: address(16),
    });
    // A fragment's payload is not an L4 header (gopacket hands it to its fragment layer).
    if flags & 0b001 != 0 || frag_offset != 0 {
        return None;
    }
    Some((protocol, bytes.get(usize::from(ihl) * 4..)?))
}

fn parse_ipv6<'a>(bytes: &'a [u8], packet: &mut Packet) -> Option<(u8, &'a [u8])> {
    let header = bytes.get(..40)?;
    if header[0] >> 4 != 6 {
        return None;
    }
    let address = |at: usize| {
        let octets: [u8; 16] = header[at..at + 16].try_into().unwrap_or_default();
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let next = header[6];
    packet.ipv6 = Some(Ipv6 {
        version: 6,
        traffic_class: (header[0] << 4) | (header[1] >> 4),
        flow_label: be32(header, 0)? & 0x000f_ffff,
        len: be16(header, 4)?,
        next_header: ip_protocol_name(next),
        hop_limit: header[7],
        saddr: address(8),
        daddr: address(24),
    });
    Some((next, &bytes[40..]))
}

fn parse_arp(bytes: &[u8]) -> Option<Arp> {
    let (hw, prot) = (usize::from(*bytes.get(4)?), usize::from(*bytes.get(5)?));
    let body = bytes.get(8..8 + 2 * (hw + prot))?;
    let ip = |addr: &[u8]| match addr.len() {
        4 => Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
        _ => mac(addr),
    };
    Some(Arp {
        addr_type: match be16(bytes, 0)? {
            1 => "Ethernet".to_string(),
            _ => "UnknownLinkType".to_string(),
        },
        protocol: ethertype_name(be16(bytes, 2)?),
        hw_address_size: bytes[4],
        prot_address_size: bytes[5],
        operation: match be16(bytes, 6)? {
            1 => "request".to_string(),
            2 => "reply".to_string(),
            other => format!("UNKNOWN({other})"),
        },
        sender_mac: mac(&body[..hw]),
        sender_ip: ip(&body[hw..hw + prot]),
        target_mac: mac(&body[hw + prot..2 * hw + prot]),
        target_ip: ip(&body[2 * hw + prot..]),
    })
}

fn parse_tcp(bytes: &[u8], sk_state: u8) -> Option<Tcp> {
    let header = bytes.get(..20)?;
    let data_offset = header[12] >> 4;
    if data_offset < 5 {
        return None;
    }
    Some(Tcp {
        sport: be16(header, 0)?,
        dport: be16(header, 2)?,
        seq: be32(header, 4)?,
        ack_seq: be32(header, 8)?,
        data_offset,
        flags: tcp_names::tcp_flag_names(u16::from(header[13])),
        window: be16(header, 14)?,
        checksum: be16(header, 16)?,
        urgent: be16(header, 18)?,
        sk_state: tcp_state_name(sk_state),
    })
}

fn parse_udp(bytes: &[u8]) -> Option<Udp> {
    let header = bytes.get(..8)?;
    Some(Udp {
        sport: be16(header, 0)?,
        dport: be16(header, 2)?,
        len: be16(header, 4)?,
        checksum: be16(header, 6)?,
    })
}

fn parse_icmp(bytes: &[u8], v6: bool) -> Option<Icmp> {
    let header = bytes.get(..if v6 { 4 } else { 8 })?;
    let (kind, code) = (header[0], header[1]);
    Some(Icmp {
        kind: icmp_type_code(kind, code, v6),
        code,
        checksum: be16(header, 2)?,
        // ICMPv6 packets carry only type, code and checksum in upstream's shape.
        id: if v6 { 0 } else { be16(header, 4)? },
        seq: if v6 { 0 } else { be16(header, 6)? },
    })
}

/// Upstream's label: `ARP`, or L3 and L4 names joined by `/` (`IPv4/TCP`, `IPv6/ICMPv6`).
fn label(packet: &Packet) -> String {
    if packet.arp.is_some() {
        return "ARP".to_string();
    }
    let l3 = match (&packet.ipv4, &packet.ipv6) {
        (Some(_), _) => "IPv4",
        (_, Some(_)) => "IPv6",
        _ => "",
    };
    let l4 = match (&packet.tcp, &packet.udp, &packet.icmp) {
        (Some(_), _, _) => "TCP",
        (_, Some(_), _) => "UDP",
        (_, _, Some(_)) if packet.ipv6.is_some() => "ICMPv6",
        (_, _, Some(_)) => "ICMP",
        _ => "",
    };
    match (l3.is_empty(), l4.is_empty()) {
        (false, false) => format!("{l3}/{l4}"),
        (false, true) => l3.to_string(),
        (true, false) => l4.to_string(),
        (true, true) => "unknown".to_string(),
    }
}

/// gopacket's `IPv4Flag` text: `DF`, `MF`, `DF|MF` (`Evil` for the reserved bit).
fn ipv4_flags(flags: u8) -> String {
    [(0b100, "Evil"), (0b010, "DF"), (0b001, "MF")]
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}

/// Upstream's `TCPStateName`, `UNKNOWN(<n>)` past the kernel's states.
pub fn tcp_state_name(state: u8) -> String {
    tcp_names::tcp_state_name(state)
        .map(str::to_string)
        .unwrap_or_else(|| format!("UNKNOWN({state})"))
}
