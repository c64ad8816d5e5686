//! Upstream's names of TCP socket states and header flags, shared by the probes that report TCP
//! packets (dropwatch's `layers.tcp`, tcp_retransmit).

/// Upstream's `TCPStateName`: `unknown` for 0, then the kernel's TCP_* states; `None` past them.
pub fn tcp_state_name(state: u8) -> Option<&'static str> {
    const NAMES: [&str; 13] = [
        "unknown",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
    ];
    NAMES.get(usize::from(state)).copied()
}

/// Upstream's TCP flag text: the set flags in the order SYN, ACK, FIN, RST, PSH, URG, ECE, CWR
/// (`SYN|ACK`), from the header bits (also the kernel's TCPHDR_* bits).
pub fn tcp_flag_names(bits: u16) -> String {
    const ORDER: [(u16, &str); 8] = [
        (0x02, "SYN"),
        (0x10, "ACK"),
        (0x01, "FIN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x20, "URG"),
        (0x40, "ECE"),
        (0x80, "CWR"),
    ];
    ORDER
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}
