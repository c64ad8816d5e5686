//! Decoding of rtnetlink datagrams: `struct nlmsghdr` framing, `RTM_NEWLINK` / `RTM_DELLINK`
//! (`struct ifinfomsg` + `IFLA_IFNAME`, `IFLA_ADDRESS`, `IFLA_MASTER` and the bonding parts of
//! `IFLA_LINKINFO`), `NLMSG_DONE` and `NLMSG_ERROR`, never indexing out of bounds whatever the
//! bytes are. Netlink is host-endian.

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct ifinfomsg`: family u8, pad u8, type u16, index i32, flags u32, change u32.
pub const IFINFOMSG_LEN: usize = 16;
/// `struct nlattr`: len u16, type u16.
const NLA_HDRLEN: usize = 4;
/// `nla_type` without `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
/// Nested in `IFLA_LINKINFO` (`enum` of `IFLA_INFO_*`).
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
/// In a bond's `IFLA_INFO_DATA`: the mode, u8 (4 = 802.3ad).
const IFLA_BOND_MODE: u16 = 1;
/// In a bond slave's `IFLA_INFO_SLAVE_DATA`.
const IFLA_BOND_SLAVE_STATE: u16 = 1;
const IFLA_BOND_SLAVE_MII_STATUS: u16 = 2;
const IFLA_BOND_SLAVE_AD_AGGREGATOR_ID: u16 = 6;
const IFLA_BOND_SLAVE_AD_ACTOR_OPER_PORT_STATE: u16 = 7;
const IFLA_BOND_SLAVE_AD_PARTNER_OPER_PORT_STATE: u16 = 8;

/// `IFF_UP`: administratively up (`ip link set X up`).
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOWER_UP`: the driver signals carrier (upstream's "carrier" bit; `IFF_RUNNING` also
/// needs the operstate to settle, so it lags and flaps on its own).
pub const IFF_LOWER_UP: u32 = 0x1_0000;

/// One link message (`RTM_NEWLINK`, or `RTM_DELLINK` when `deleted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMessage {
    pub deleted: bool,
    pub index: i32,
    /// `ifi_flags` (`IFF_*`).
    pub flags: u32,
    pub ifname: String,
    /// `IFLA_ADDRESS` as lowercase `aa:bb:..` (as Go's `net.HardwareAddr.String`); empty when
    /// the device has none.
    pub mac: String,
    /// `IFLA_MASTER`: the ifindex of the bond (or bridge…) this device is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_LINKINFO`: the device's kind and, for bonds and their slaves, the bonding state.
    pub info: LinkInfo,
}

/// What `IFLA_LINKINFO` says about a link (only the parts the link probes read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// `IFLA_INFO_KIND` (`bond`, `veth`…; empty for physical devices).
    pub kind: String,
    /// `IFLA_BOND_MODE` of a bond (4 = 802.3ad).
    pub bond_mode: Option<u8>,
    /// `IFLA_INFO_SLAVE_KIND` (`bond` for a bond's slave).
    pub slave_kind: String,
    /// `IFLA_INFO_SLAVE_DATA` of a bond's slave.
    pub bond_slave: Option<BondSlave>,
}

/// A bond slave's `IFLA_BOND_SLAVE_*` attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BondSlave {
    /// 0 active, 1 backup.
    pub state: Option<u8>,
    /// 0 link up, 1 fail, 2 down, 3 back.
    pub mii_status: Option<u8>,
    pub aggregator_id: Option<u16>,
    /// 802.3ad actor port state bits (LACP_STATE_*: 0x10 collecting, 0x20 distributing).
    pub actor_oper_port_state: Option<u8>,
    pub partner_oper_port_state: Option<u16>,
}

/// One message of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Link(LinkMessage),
    /// End of the dump with this sequence number.
    Done {
        seq: u32,
    },
    /// `NLMSG_ERROR` answering request `seq` (`errno` 0 is an acknowledgement).
    Error {
        seq: u32,
        errno: i32,
    },
    /// Anything else (`NLMSG_NOOP`, other message types): ignored.
    Other,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Splits one datagram into its messages. A message that does not decode is an `Err` naming
/// what is wrong and the others still decode; a broken frame length ends the datagram (what
/// follows cannot be found).
pub fn parse_datagram(mut b: &[u8]) -> Vec<Result<Message, String>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(len), Some(kind)) = (u32_at(b, 0), u16_at(b, 4)) else {
            out.push(Err(format!(
                "truncated nlmsghdr ({} bytes left in the datagram)",
                b.len()
            )));
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            out.push(Err(format!(
                "message type {kind}: length {len} out of bounds ({} bytes left in the datagram)",
                b.len()
            )));
            break;
        }
        let seq = u32_at(b, 8).unwrap_or_default();
        out.push(parse_message(kind, seq, &b[NLMSG_HDRLEN..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

fn parse_message(kind: u16, seq: u32, payload: &[u8]) -> Result<Message, String> {
    match kind {
        RTM_NEWLINK | RTM_DELLINK => parse_link(kind == RTM_DELLINK, payload).map(Message::Link),
        NLMSG_DONE => Ok(Message::Done { seq }),
        NLMSG_ERROR => {
            // `struct nlmsgerr`: int error (negative errno), then the request's header.
            let error = u32_at(payload, 0)
                .ok_or_else(|| format!("NLMSG_ERROR of {} bytes, want at least 4", payload.len()))?
                as i32;
            Ok(Message::Error {
                seq,
                errno: error.saturating_neg(),
            })
        }
        _ => Ok(Message::Other),
    }
}

/// Decodes the payload of a link message: `struct ifinfomsg` and its attributes.
pub fn parse_link(deleted: bool, payload: &[u8]) -> Result<LinkMessage, String> {
    let what = if deleted {
        "RTM_DELLINK"
    } else {
        "RTM_NEWLINK"
    };
    let (Some(index), Some(flags)) = (u32_at(payload, 4), u32_at(payload, 8)) else {
        return Err(format!(
            "{what}: ifinfomsg of {} bytes, want {IFINFOMSG_LEN}",
            payload.len()
        ));
    };
    let index = index as i32;
    let mut attrs = payload.get(IFINFOMSG_LEN..).unwrap_or_default();
    let mut ifname = None;
    let mut mac = String::new();
    let mut master = None;
    let mut info = LinkInfo::default();
    while !attrs.is_empty() {
        let (Some(len), Some(kind)) = (u16_at(attrs, 0), u16_at(attrs, 2)) else {
            return Err(format!(
                "{what} of ifindex {index}: truncated attribute header ({} bytes left)",
                attrs.len()
            ));
        };
        let len = usize::from(len);
        if len < NLA_HDRLEN || len > attrs.len() {
            return Err(format!(
                "{what} of ifindex {index}: attribute {} length {len} out of bounds ({} bytes left)",
                kind & NLA_TYPE_MASK,
                attrs.len()
            ));
        }
        let value = &attrs[NLA_HDRLEN..len];
        match kind & NLA_TYPE_MASK {
            IFLA_IFNAME => {
                let name = value.split(|&b| b == 0).next().unwrap_or_default();
                let name = std::str::from_utf8(name)
                    .map_err(|_| format!("{what} of ifindex {index}: IFLA_IFNAME is not UTF-8"))?;
                ifname = Some(name.to_string());
            }
            IFLA_ADDRESS => mac = format_mac(value),
            IFLA_MASTER => master = u32_at(value, 0),
            IFLA_LINKINFO => {
                info = parse_link_info(value)
                    .map_err(|e| format!("{what} of ifindex {index}: IFLA_LINKINFO: {e}"))?
            }
            _ => {}
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    let ifname = ifname
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{what} of ifindex {index}: no IFLA_IFNAME attribute"))?;
    Ok(LinkMessage {
        deleted,
        index,
        flags,
        ifname,
        mac,
        master,
        info,
    })
}

/// The attributes of a nested attribute list as `(type, value)`; an error names the attribute
/// whose length is out of bounds.
fn attributes(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(len), Some(kind)) = (u16_at(b, 0), u16_at(b, 2)) else {
            return Err(format!(
                "truncated attribute header ({} bytes left)",
                b.len()
            ));
        };
        let len = usize::from(len);
        if len < NLA_HDRLEN || len > b.len() {
            return Err(format!(
                "attribute {} length {len} out of bounds ({} bytes left)",
                kind & NLA_TYPE_MASK,
                b.len()
            ));
        }
        out.push((kind & NLA_TYPE_MASK, &b[NLA_HDRLEN..len]));
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

fn nul_text(value: &[u8]) -> String {
    let text = value.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// `IFLA_LINKINFO`'s kinds and the bonding attributes of a bond or a bond's slave.
pub fn parse_link_info(value: &[u8]) -> Result<LinkInfo, String> {
    let mut info = LinkInfo::default();
    let mut data = None;
    let mut slave_data = None;
    for (kind, value) in attributes(value)? {
        match kind {
            IFLA_INFO_KIND => info.kind = nul_text(value),
            IFLA_INFO_DATA => data = Some(value),
            IFLA_INFO_SLAVE_KIND => info.slave_kind = nul_text(value),
            IFLA_INFO_SLAVE_DATA => slave_data = Some(value),
            _ => {}
        }
    }
    // The data's attribute numbers mean something only for the kind they belong to.
    if let (Some(data), "bond") = (data, info.kind.as_str()) {
        for (kind, value) in attributes(data).map_err(|e| format!("bond data: {e}"))? {
            if kind == IFLA_BOND_MODE {
                info.bond_mode = value.first().copied();
            }
        }
    }
    if let (Some(data), "bond") = (slave_data, info.slave_kind.as_str()) {
        let mut slave = BondSlave::default();
        for (kind, value) in attributes(data).map_err(|e| format!("bond slave data: {e}"))? {
            match kind {
                IFLA_BOND_SLAVE_STATE => slave.state = value.first().copied(),
                IFLA_BOND_SLAVE_MII_STATUS => slave.mii_status = value.first().copied(),
                IFLA_BOND_SLAVE_AD_AGGREGATOR_ID => slave.aggregator_id = u16_at(value, 0),
                IFLA_BOND_SLAVE_AD_ACTOR_OPER_PORT_STATE => {
                    slave.actor_oper_port_state = value.first().copied()
                }
                IFLA_BOND_SLAVE_AD_PARTNER_OPER_PORT_STATE => {
                    slave.partner_oper_port_state = u16_at(value, 0)
                }
                _ => {}
            }
        }
        info.bond_slave = Some(slave);
    }
    Ok(info)
}

/// Lowercase colon-separated hex, as Go's `net.HardwareAddr.String` (empty for no bytes).
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An `RTM_GETLINK` dump request (`NLM_F_REQUEST | NLM_F_DUMP`) for every family.
pub fn dump_request(seq: u32) -> Vec<u8> {
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    let len = (NLMSG_HDRLEN + IFINFOMSG_LEN) as u32;
    let mut req = Vec::with_capacity(len as usize);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    // ifinfomsg all zero: AF_UNSPEC, every device.
    req.extend_from_slice(&[0u8; IFINFOMSG_LEN]);
    req
}
