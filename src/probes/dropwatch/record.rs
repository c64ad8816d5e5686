//! Decoding of one `struct drop_event` of dropwatch.bpf.c: the fixed part (task, device, the
//! L3/L4 header fields the kernel copied) and the kernel stack frames after it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::probes::common::event_ring;

pub(super) const ETH_P_IP: u16 = 0x0800;
pub(super) const ETH_P_IPV6: u16 = 0x86dd;

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
        Some(Self {
            boot_ns: event_ring::u64_at(bytes, 0)?,
            location: event_ring::u64_at(bytes, 8)?,
            cgroup_id: event_ring::u64_at(bytes, 16)?,
            reason: event_ring::u32_at(bytes, 24)?,
            pid: event_ring::u32_at(bytes, 28)?,
            tid: event_ring::u32_at(bytes, 32)?,
            netns: event_ring::u32_at(bytes, 36)?,
            ifindex: event_ring::u32_at(bytes, 40)?,
            l3proto: event_ring::u16_at(bytes, 44)?,
            l4proto: bytes[46],
            sport: event_ring::u16_at(bytes, 48)?,
            dport: event_ring::u16_at(bytes, 50)?,
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

    pub(super) fn address(&self, raw: &[u8; 16]) -> Option<IpAddr> {
        match self.l3proto {
            ETH_P_IP => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
            ETH_P_IPV6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
            _ => None,
        }
    }

    pub(super) fn decoded(&self) -> bool {
        matches!(self.l3proto, ETH_P_IP | ETH_P_IPV6) && self.l4proto != 0
    }
}
