//! The rtnetlink side of the qdisc probe: an `RTM_GETQDISC` dump over a `NETLINK_ROUTE` socket
//! ([`dump_qdiscs`]) and the pure decoding of its reply buffers ([`DumpParser`]), which never
//! indexes out of bounds whatever the bytes are. Netlink is host-endian.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDRLEN: usize = 16;
/// `struct tcmsg`: family u8, pad u8, pad u16, ifindex i32, handle u32, parent u32, info u32.
const TCMSG_LEN: usize = 20;
/// `struct nlattr`: len u16, type u16.
const NLA_HDRLEN: usize = 4;
/// `nla_type` without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWQDISC: u16 = 36;
const RTM_GETQDISC: u16 = 38;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;

// Attributes of a qdisc message (`enum` in linux/rtnetlink.h).
const TCA_KIND: u16 = 1;
const TCA_STATS: u16 = 3;
const TCA_STATS2: u16 = 7;

// Nested in TCA_STATS2 (linux/gen_stats.h).
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
const TCA_STATS_PAD: u16 = 6;
const TCA_STATS_BASIC_HW: u16 = 7;
const TCA_STATS_PKT64: u16 = 8;

/// `TC_H_ROOT`: the parent of a device's root (egress) qdisc.
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;

/// Largest reply datagram: the kernel sizes dump skbs at most 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of one qdisc (`struct gnet_stats_basic` + `struct gnet_stats_queue`, or the legacy
/// `struct tc_stats`, which has no requeues).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QdiscStats {
    pub bytes: u64,
    pub packets: u64,
    pub drops: u32,
    pub requeues: u32,
    pub overlimits: u32,
    /// Packets in the queue now.
    pub qlen: u32,
    /// Bytes in the queue now.
    pub backlog: u32,
}

/// One `RTM_NEWQDISC` message of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub ifindex: i32,
    pub handle: u32,
    pub parent: u32,
    pub kind: String,
    pub stats: QdiscStats,
}

impl Qdisc {
    /// The device's root egress qdisc (not a child of a class, not ingress/clsact).
    pub fn is_root(&self) -> bool {
        self.parent == TC_H_ROOT
    }
}

/// The decoded reply of one dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    pub qdiscs: Vec<Qdisc>,
    /// Messages that were framed correctly but could not be decoded (`message <n>: <reason>`);
    /// the other messages are kept.
    pub skipped: Vec<String>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Splits `b` into `(type, payload)` netlink attributes; an attribute whose length is below its
/// header or beyond the buffer is an error naming `what`.
fn attributes<'a>(mut b: &'a [u8], what: &str) -> Result<Vec<(u16, &'a [u8])>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(len), Some(kind)) = (u16_at(b, 0), u16_at(b, 2)) else {
            return Err(format!(
                "{what}: truncated attribute header ({} bytes left)",
                b.len()
            ));
        };
        let len = usize::from(len);
        if len < NLA_HDRLEN || len > b.len() {
            return Err(format!(
                "{what}: attribute {} length {len} out of bounds ({} bytes left)",
                kind & NLA_TYPE_MASK,
                b.len()
            ));
        }
        out.push((kind & NLA_TYPE_MASK, &b[NLA_HDRLEN..len]));
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

/// Counters from a `TCA_STATS2` nest. The software `BASIC` wins over `BASIC_HW`; a `PKT64`
/// (sent when packets overflow u32) replaces the packets of the basic block it follows.
fn decode_stats2(nest: &[u8]) -> Result<QdiscStats, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Basic {
        Sw,
        Hw,
    }
    let mut stats = QdiscStats::default();
    let mut have_sw = false;
    let mut last_basic: Option<Basic> = None;
    for (kind, payload) in attributes(nest, "TCA_STATS2")? {
        match kind {
            TCA_STATS_BASIC | TCA_STATS_BASIC_HW => {
                let which = if kind == TCA_STATS_BASIC {
                    Basic::Sw
                } else {
                    Basic::Hw
                };
                let (Some(bytes), Some(packets)) = (u64_at(payload, 0), u32_at(payload, 8)) else {
                    return Err(format!(
                        "TCA_STATS2: basic statistics of {} bytes, want 12",
                        payload.len()
                    ));
                };
                if which == Basic::Sw || !have_sw {
                    stats.bytes = bytes;
                    stats.packets = u64::from(packets);
                }
                have_sw |= which == Basic::Sw;
                last_basic = Some(which);
            }
            TCA_STATS_PKT64 => {
                let packets = u64_at(payload, 0).ok_or_else(|| {
                    format!(
                        "TCA_STATS2: 64-bit packet count of {} bytes, want 8",
                        payload.len()
                    )
                })?;
                match last_basic {
                    Some(Basic::Sw) => stats.packets = packets,
                    Some(Basic::Hw) if !have_sw => stats.packets = packets,
                    _ => {}
                }
            }
            TCA_STATS_QUEUE => {
                let field = |i: usize| u32_at(payload, 4 * i);
                let (Some(qlen), Some(backlog), Some(drops), Some(requeues), Some(overlimits)) =
                    (field(0), field(1), field(2), field(3), field(4))
                else {
                    return Err(format!(
                        "TCA_STATS2: queue statistics of {} bytes, want 20",
                        payload.len()
                    ));
                };
                stats.qlen = qlen;
                stats.backlog = backlog;
                stats.drops = drops;
                stats.requeues = requeues;
                stats.overlimits = overlimits;
            }
            _ => {}
        }
        // Alignment padding before a 64-bit attribute does not separate PKT64 from its block.
        if !matches!(
            kind,
            TCA_STATS_BASIC | TCA_STATS_BASIC_HW | TCA_STATS_PAD | TCA_STATS_PKT64
        ) {
            last_basic = None;
        }
    }
    Ok(stats)
}

/// Counters from the legacy `struct tc_stats` (bytes u64, packets, drops, overlimits, bps, pps,
/// qlen, backlog u32), for kernels that send no `TCA_STATS2`.
fn decode_legacy_stats(payload: &[u8]) -> Result<QdiscStats, String> {
    let field = |off: usize| u32_at(payload, off);
    match (
        u64_at(payload, 0),
        field(8),
        field(12),
        field(16),
        field(28),
        field(32),
    ) {
        (Some(bytes), Some(packets), Some(drops), Some(overlimits), Some(qlen), Some(backlog)) => {
            Ok(QdiscStats {
                bytes,
                packets: u64::from(packets),
                drops,
                requeues: 0,
                overlimits,
                qlen,
                backlog,
            })
        }
        _ => Err(format!(
            "TCA_STATS: {} bytes, want 36 (struct tc_stats)",
            payload.len()
        )),
    }
}

/// Decodes the payload of one `RTM_NEWQDISC` message: `struct tcmsg` and its attributes.
pub fn parse_qdisc(payload: &[u8]) -> Result<Qdisc, String> {
    let (Some(ifindex), Some(handle), Some(parent)) =
        (u32_at(payload, 4), u32_at(payload, 8), u32_at(payload, 12))
    else {
        return Err(format!(
            "tcmsg of {} bytes, want {TCMSG_LEN}",
            payload.len()
        ));
    };
    let attrs = payload.get(TCMSG_LEN..).unwrap_or_default();
    let mut kind = None;
    let mut stats2 = None;
    let mut legacy = None;
    for (attr, value) in attributes(attrs, "qdisc")? {
        match attr {
            TCA_KIND => {
                let name = value.split(|&b| b == 0).next().unwrap_or_default();
                let name =
                    std::str::from_utf8(name).map_err(|_| "TCA_KIND is not UTF-8".to_string())?;
                kind = Some(name.to_string());
            }
            TCA_STATS2 => stats2 = Some(decode_stats2(value)?),
            TCA_STATS => legacy = Some(value),
            _ => {}
        }
    }
    let kind = kind
        .filter(|k| !k.is_empty())
        .ok_or("no TCA_KIND attribute")?;
    let stats = match (stats2, legacy) {
        (Some(stats), _) => stats,
        (None, Some(raw)) => decode_legacy_stats(raw)?,
        (None, None) => return Err(format!("{kind}: neither TCA_STATS2 nor TCA_STATS")),
    };
    Ok(Qdisc {
        ifindex: ifindex as i32,
        handle,
        parent,
        kind,
        stats,
    })
}

/// Decodes the datagrams of a dump reply in order ([`DumpParser::feed`]) until `NLMSG_DONE`.
#[derive(Debug)]
pub struct DumpParser {
    seq: u32,
    done: bool,
    interrupted: bool,
    messages: usize,
    dump: Dump,
}

impl DumpParser {
    /// A parser for the reply to the request with sequence number `seq`.
    pub fn new(seq: u32) -> Self {
        Self {
            seq,
            done: false,
            interrupted: false,
            messages: 0,
            dump: Dump::default(),
        }
    }

    /// Decodes one received datagram; true once `NLMSG_DONE` was seen. Broken framing, a kernel
    /// error, a foreign sequence number or an unexpected message type fail the whole dump; a
    /// qdisc message whose content cannot be decoded is skipped and noted in [`Dump::skipped`].
    pub fn feed(&mut self, mut buf: &[u8]) -> Result<bool, String> {
        while !buf.is_empty() {
            if self.done {
                return Err(format!("{} bytes after NLMSG_DONE", buf.len()));
            }
            let (Some(len), Some(kind), Some(flags), Some(seq)) = (
                u32_at(buf, 0),
                u16_at(buf, 4),
                u16_at(buf, 6),
                u32_at(buf, 8),
            ) else {
                return Err(format!(
                    "truncated netlink header ({} bytes left)",
                    buf.len()
                ));
            };
            let len = len as usize;
            if len < NLMSG_HDRLEN || len > buf.len() {
                return Err(format!(
                    "netlink message length {len} out of bounds ({} bytes left)",
                    buf.len()
                ));
            }
            if seq != self.seq {
                return Err(format!(
                    "netlink message with sequence number {seq}, want {}",
                    self.seq
                ));
            }
            self.messages += 1;
            self.interrupted |= flags & NLM_F_DUMP_INTR != 0;
            let payload = &buf[NLMSG_HDRLEN..len];
            match kind {
                RTM_NEWQDISC => match parse_qdisc(payload) {
                    Ok(qdisc) => self.dump.qdiscs.push(qdisc),
                    Err(reason) => self
                        .dump
                        .skipped
                        .push(format!("message {}: {reason}", self.messages)),
                },
                NLMSG_DONE => {
                    // With NLM_F_MULTI the kernel puts the dump's error code here.
                    if let Some(code) = u32_at(payload, 0).map(|c| c as i32) {
                        if code < 0 {
                            return Err(format!(
                                "dump failed: {}",
                                io::Error::from_raw_os_error(-code)
                            ));
                        }
                    }
                    self.done = true;
                }
                NLMSG_ERROR => match u32_at(payload, 0).map(|c| c as i32) {
                    Some(0) => {} // an acknowledgement
                    Some(code) => {
                        return Err(format!(
                            "kernel error: {}",
                            io::Error::from_raw_os_error(code.saturating_neg())
                        ))
                    }
                    None => return Err("truncated NLMSG_ERROR".to_string()),
                },
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => return Err("NLMSG_OVERRUN: data lost".to_string()),
                other => return Err(format!("unexpected netlink message type {other}")),
            }
            buf = &buf[align4(len).min(buf.len())..];
        }
        Ok(self.done)
    }

    /// The kernel flagged the dump inconsistent (`NLM_F_DUMP_INTR`): the tables changed while
    /// it was being dumped.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// The decoded dump; an error unless `NLMSG_DONE` was seen.
    pub fn finish(self) -> Result<Dump, String> {
        if !self.done {
            return Err(format!(
                "reply ended after {} messages without NLMSG_DONE",
                self.messages
            ));
        }
        Ok(self.dump)
    }
}

/// The `RTM_GETQDISC` dump request with sequence number `seq`.
pub fn dump_request(seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + TCMSG_LEN) as u32;
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + TCMSG_LEN);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&RTM_GETQDISC.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend_from_slice(&[0u8; TCMSG_LEN]); // AF_UNSPEC, every device
    req
}

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// A `NETLINK_ROUTE` socket in the calling thread's network namespace.
pub fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one dump request over a new socket and decodes the reply. `buf` is the receive buffer
/// (kept by the caller between ticks).
fn dump_once(seq: u32, buf: &mut Vec<u8>) -> Result<(Dump, bool), String> {
    let fd = open_socket().map_err(|e| format!("socket(AF_NETLINK, NETLINK_ROUTE): {e}"))?;
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: `timeout` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_os_error("setsockopt(SO_RCVTIMEO)"));
    }
    // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let req = dump_request(seq);
    // SAFETY: `req` and `kernel` outlive the call and their sizes are passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(last_os_error("send RTM_GETQDISC"));
    }
    buf.resize(RECV_BUFFER, 0);
    let mut parser = DumpParser::new(seq);
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes. MSG_TRUNC makes netlink return the
        // datagram's real length, so a truncation is detected instead of silently cut.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    return Err(format!(
                        "no complete reply to RTM_GETQDISC within {RECV_TIMEOUT:?}"
                    ))
                }
                _ => return Err(format!("recv RTM_GETQDISC reply: {err}")),
            }
        }
        let n = n as usize;
        if n == 0 {
            return Err("netlink socket closed before NLMSG_DONE".to_string());
        }
        if n > buf.len() {
            return Err(format!(
                "reply datagram of {n} bytes exceeds the {} byte buffer",
                buf.len()
            ));
        }
        if parser.feed(&buf[..n])? {
            break;
        }
    }
    let interrupted = parser.interrupted();
    Ok((parser.finish()?, interrupted))
}

/// Dumps every qdisc of the current network namespace. A dump the kernel flags inconsistent is
/// retried (3 attempts in all).
pub fn dump_qdiscs(seq: &mut u32, buf: &mut Vec<u8>) -> Result<Dump, String> {
    for _ in 0..3 {
        *seq = seq.wrapping_add(1);
        let (dump, interrupted) = dump_once(*seq, buf)?;
        if !interrupted {
            return Ok(dump);
        }
    }
    Err("RTM_GETQDISC dump interrupted (NLM_F_DUMP_INTR) 3 times in a row".to_string())
}

/// The name of interface `ifindex` in the current network namespace; `None` when it is gone.
pub fn ifname(ifindex: i32) -> Option<String> {
    let index = u32::try_from(ifindex).ok().filter(|&i| i != 0)?;
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` holds IF_NAMESIZE bytes, as if_indextoname(3) requires.
    let ret = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if ret.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
