//! The `protocols`, `ports` and `reasons` filters as user space sees them (the kernel applies
//! the same test from its filter maps).

use std::collections::HashSet;

use super::reasons::normalize_reason;
use super::record::DropRecord;
use super::DropwatchConfig;

/// Protocol names of the `protocols` filter.
const PROTOCOLS: [(&str, u8); 5] = [
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("icmpv6", 58),
    ("sctp", 132),
];

pub(super) fn protocol_number(name: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// The configured filters (applied in the kernel; [`DropFilter::accepts`] is the same test in
/// user space).
#[derive(Debug, Default)]
pub struct DropFilter {
    pub(super) protocols: HashSet<u8>,
    pub(super) ports: HashSet<u16>,
    reasons: HashSet<String>,
    ignored_reasons: HashSet<String>,
}

impl DropFilter {
    pub fn new(config: &DropwatchConfig) -> Self {
        Self {
            protocols: config
                .protocols
                .iter()
                .filter_map(|p| protocol_number(p))
                .collect(),
            ports: config.ports.iter().copied().collect(),
            reasons: config.reasons.iter().map(|r| normalize_reason(r)).collect(),
            ignored_reasons: config
                .ignored_reasons
                .iter()
                .map(|r| normalize_reason(r))
                .collect(),
        }
    }

    pub fn accepts(&self, record: &DropRecord, reason: &str) -> bool {
        let reason = normalize_reason(reason);
        !self.ignored_reasons.contains(&reason)
            && (self.protocols.is_empty() || self.protocols.contains(&record.l4proto))
            && (self.ports.is_empty()
                || self.ports.contains(&record.sport)
                || self.ports.contains(&record.dport))
            && (self.reasons.is_empty() || self.reasons.contains(&reason))
    }
}
