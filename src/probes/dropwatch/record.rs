//! Decoding of one `struct drop_event` of dropwatch.bpf.c: the fixed part (task, device, the
//! L3/L4 header fields the kernel copied) and the kernel stack frames after it.

use crate::probes::common::event_ring;

/// One `struct drop_event` of dropwatch.bpf.c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRecord {
    pub boot_ns: u64,
    pub location: u64,
    pub cgroup_id: u64,
    pub skb_addr: u64,
    /// `skb->sk->sk_memcg` (the address of its css); 0 without a socket or memcg.
    pub memcg_css: u64,
    pub netns_cookie: u64,
    pub reason: u32,
    pub pid: u32,
    pub tid: u32,
    pub netns: u32,
    pub ifindex: u32,
    /// `dev->flags` (IFF_*).
    pub dev_flags: u32,
    pub queue_mapping: u32,
    /// `skb->len`.
    pub len: u32,
    /// `skb->protocol` (ethertype).
    pub l3proto: u16,
    pub l4proto: u8,
    /// TCP state of the owning socket (0: no TCP socket).
    pub sk_state: u8,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub comm: String,
    pub device: String,
    /// Low bits of `dev->state` (`__LINK_STATE_*`).
    pub dev_state: u32,
    /// The packet's first bytes: from the Ethernet header when `raw_is_mac`, else from the IP
    /// header; empty when the kernel could not copy them.
    pub raw: Vec<u8>,
    pub raw_is_mac: bool,
    /// Kernel stack of the drop: return addresses, innermost first (the tracing glue included).
    pub stack: Vec<u64>,
}

impl DropRecord {
    /// The fixed part; the stack's frames follow it (`stack_bytes` of them).
    pub const SIZE: usize = 288;
    const STACK_OFFSET: usize = 288;
    const RAW_OFFSET: usize = 168;
    const RAW_LEN: usize = 120;

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        let raw_len = usize::from(event_ring::u16_at(bytes, 160)?).min(Self::RAW_LEN);
        Some(Self {
            boot_ns: event_ring::u64_at(bytes, 0)?,
            location: event_ring::u64_at(bytes, 8)?,
            cgroup_id: event_ring::u64_at(bytes, 16)?,
            skb_addr: event_ring::u64_at(bytes, 24)?,
            memcg_css: event_ring::u64_at(bytes, 32)?,
            netns_cookie: event_ring::u64_at(bytes, 40)?,
            reason: event_ring::u32_at(bytes, 48)?,
            pid: event_ring::u32_at(bytes, 52)?,
            tid: event_ring::u32_at(bytes, 56)?,
            netns: event_ring::u32_at(bytes, 60)?,
            ifindex: event_ring::u32_at(bytes, 64)?,
            dev_flags: event_ring::u32_at(bytes, 68)?,
            queue_mapping: event_ring::u32_at(bytes, 72)?,
            len: event_ring::u32_at(bytes, 76)?,
            l3proto: event_ring::u16_at(bytes, 80)?,
            l4proto: bytes[82],
            sk_state: bytes[83],
            sport: event_ring::u16_at(bytes, 84)?,
            dport: event_ring::u16_at(bytes, 86)?,
            saddr: bytes[88..104].try_into().ok()?,
            daddr: bytes[104..120].try_into().ok()?,
            comm: event_ring::comm_at(bytes, 120)?,
            device: event_ring::comm_at(bytes, 136)?,
            dev_state: event_ring::u32_at(bytes, 152)?,
            raw: bytes[Self::RAW_OFFSET..Self::RAW_OFFSET + raw_len].to_vec(),
            raw_is_mac: bytes[162] != 0,
            stack: {
                let stack_bytes = event_ring::u32_at(bytes, 156)? as usize;
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
}
