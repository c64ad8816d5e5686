//! gopacket's names of EtherTypes, IP protocols and ICMP types, as upstream's `layers` prints them.

use super::layers::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6};

/// gopacket's `EthernetType` names of the common types.
pub(super) fn ethertype_name(kind: u16) -> String {
    match kind {
        ETH_P_IP => "IPv4",
        ETH_P_ARP => "ARP",
        ETH_P_IPV6 => "IPv6",
        0x8100 => "Dot1Q",
        0x88a8 => "QinQ",
        0x8847 => "MPLSUnicast",
        0x8848 => "MPLSMulticast",
        0x8863 => "PPPoEDiscovery",
        0x8864 => "PPPoESession",
        0x888e => "EAPOL",
        0x88cc => "LinkLayerDiscovery",
        _ => "UnknownEthernetType",
    }
    .to_string()
}

/// gopacket's `IPProtocol` names.
pub(super) fn ip_protocol_name(protocol: u8) -> String {
    match protocol {
        0 => "IPv6HopByHop",
        1 => "ICMPv4",
        2 => "IGMP",
        4 => "IPv4",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        43 => "IPv6Routing",
        44 => "IPv6Fragment",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        59 => "NoNextHeader",
        60 => "IPv6Destination",
        89 => "OSPF",
        94 => "IPIP",
        97 => "EtherIP",
        112 => "VRRP",
        132 => "SCTP",
        136 => "UDPLite",
        137 => "MPLSInIP",
        _ => "UnknownIPProtocol",
    }
    .to_string()
}

/// gopacket's ICMPv4/ICMPv6 `TypeCode` text: `EchoRequest`, `DestinationUnreachable(Port)`,
/// `Type(Code: n)` for a code it does not name, `t(c)` for an unknown type.
pub(super) fn icmp_type_code(kind: u8, code: u8, v6: bool) -> String {
    let (name, codes): (&str, &[&str]) = if v6 {
        match kind {
            1 => (
                "DestinationUnreachable",
                &[
                    "NoRouteToDst",
                    "AdminProhibited",
                    "BeyondScopeOfSrc",
                    "AddressUnreachable",
                    "PortUnreachable",
                    "SrcAddressFailedPolicy",
                    "RejectRouteToDst",
                ],
            ),
            2 => ("PacketTooBig", &[]),
            3 => (
                "TimeExceeded",
                &["HopLimitExceeded", "FragmentReassemblyTimeExceeded"],
            ),
            4 => (
                "ParameterProblem",
                &[
                    "ErroneousHeaderField",
                    "UnrecognizedNextHeader",
                    "UnrecognizedIPv6Option",
                ],
            ),
            128 => ("EchoRequest", &[]),
            129 => ("EchoReply", &[]),
            133 => ("RouterSolicitation", &[]),
            134 => ("RouterAdvertisement", &[]),
            135 => ("NeighborSolicitation", &[]),
            136 => ("NeighborAdvertisement", &[]),
            137 => ("Redirect", &[]),
            _ => return format!("{kind}({code})"),
        }
    } else {
        match kind {
            0 => ("EchoReply", &[]),
            3 => (
                "DestinationUnreachable",
                &[
                    "Net",
                    "Host",
                    "Protocol",
                    "Port",
                    "FragmentationNeeded",
                    "SourceRoutingFailed",
                    "NetUnknown",
                    "HostUnknown",
                    "SourceIsolated",
                    "NetAdminProhibited",
                    "HostAdminProhibited",
                    "NetTOS",
                    "HostTOS",
                    "CommAdminProhibited",
                    "HostPrecedence",
                    "PrecedenceCutoff",
                ],
            ),
            4 => ("SourceQuench", &[]),
            5 => ("Redirect", &["Network", "Host", "TOS+Network", "TOS+Host"]),
            8 => ("EchoRequest", &[]),
            9 => ("RouterAdvertisement", &[]),
            10 => ("RouterSolicitation", &[]),
            11 => (
                "TimeExceeded",
                &["TTLExceeded", "FragmentReassemblyTimeExceeded"],
            ),
            12 => (
                "ParameterProblem",
                &["PointerIndicatesError", "MissingOption", "BadLength"],
            ),
            13 => ("TimestampRequest", &[]),
            14 => ("TimestampReply", &[]),
            15 => ("InfoRequest", &[]),
            16 => ("InfoReply", &[]),
            17 => ("AddressMaskRequest", &[]),
            18 => ("AddressMaskReply", &[]),
            _ => return format!("{kind}({code})"),
        }
    };
    match (codes.get(usize::from(code)), code) {
        (Some(code_name), _) => format!("{name}({code_name})"),
        (None, 0) if codes.is_empty() => name.to_string(),
        (None, _) => format!("{name}(Code: {code})"),
    }
}
