//! The kernel's record of one socket read/write or close (`struct msg_event` of
//! nettrace.bpf.c).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::probes::common::event_ring::{comm_at, u16_at, u32_at, u64_at};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// Offset of `payload` in `struct msg_event`.
const PAYLOAD_OFFSET: usize = 112;

/// What the syscall did on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// write / sendto: bytes out.
    Send,
    /// read / recvfrom: bytes in (`bytes == 0` is the peer's EOF).
    Recv,
    /// sock:inet_sock_set_state to TCP_CLOSE.
    Close,
}

/// One `struct msg_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// `bpf_ktime_get_boot_ns()` at sys_enter and sys_exit.
    pub enter_ns: u64,
    pub exit_ns: u64,
    pub cgroup_id: u64,
    /// The kernel socket's address: the connection's identity while it lives.
    pub sk: u64,
    pub pid: u32,
    pub tid: u32,
    pub netns: u32,
    /// TCP sequence number of the first byte: `write_seq` before a send, `copied_seq` before a
    /// receive.
    pub seq: u32,
    pub bytes: u32,
    pub srtt_us: u32,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub direction: Direction,
    pub comm: String,
    /// The first bytes of the buffer (at most `payload_bytes` of the config).
    pub payload: Vec<u8>,
}

impl MessageRecord {
    /// The fixed part plus the largest payload.
    pub const SIZE: usize = PAYLOAD_OFFSET + 256;

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < Self::SIZE {
            return None;
        }
        let family = u16_at(b, 56)?;
        let address = |o: usize| -> Option<IpAddr> {
            let raw: [u8; 16] = b.get(o..o + 16)?.try_into().ok()?;
            match family {
                AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
                AF_INET6 => {
                    let v6 = Ipv6Addr::from(raw);
                    // A v4 peer of a dual-stack socket is the v4 address.
                    Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
                }
                _ => None,
            }
        };
        let direction = match b.get(62)? {
            0 => Direction::Send,
            1 => Direction::Recv,
            2 => Direction::Close,
            _ => return None,
        };
        let captured = usize::from(*b.get(63)?);
        Some(Self {
            enter_ns: u64_at(b, 0)?,
            exit_ns: u64_at(b, 8)?,
            cgroup_id: u64_at(b, 16)?,
            sk: u64_at(b, 24)?,
            pid: u32_at(b, 32)?,
            tid: u32_at(b, 36)?,
            netns: u32_at(b, 40)?,
            seq: u32_at(b, 44)?,
            bytes: u32_at(b, 48)?,
            srtt_us: u32_at(b, 52)?,
            local_port: u16_at(b, 58)?,
            remote_port: u16_at(b, 60)?,
            direction,
            local: address(64)?,
            remote: address(80)?,
            comm: comm_at(b, 96)?,
            payload: b.get(PAYLOAD_OFFSET..PAYLOAD_OFFSET + captured)?.to_vec(),
        })
    }

    /// When the message crossed the application/kernel boundary: a send's bytes are handed
    /// over at sys_enter, a receive's are handed back at sys_exit (its sys_enter may have
    /// waited long before anything arrived).
    pub fn message_ns(&self) -> u64 {
        match self.direction {
            Direction::Send => self.enter_ns,
            Direction::Recv | Direction::Close => self.exit_ns,
        }
    }
}
