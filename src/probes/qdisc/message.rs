//! Decoding of one `RTM_NEWQDISC` message: its `struct tcmsg` and attributes (kind, counters),
//! never indexing out of bounds whatever the bytes are. Netlink is host-endian.

/// `struct tcmsg`: family u8, pad u8, pad u16, ifindex i32, handle u32, parent u32, info u32.
pub(super) const TCMSG_LEN: usize = 20;
/// `struct nlattr`: len u16, type u16.
const NLA_HDRLEN: usize = 4;
/// `nla_type` without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;

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

pub(super) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

pub(super) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

pub(super) fn align4(len: usize) -> usize {
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
