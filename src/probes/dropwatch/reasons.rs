//! Drop reason names: read from the running kernel's tracepoint format (they vary by version)
//! and matched against the configured `reasons` filter.

use std::collections::HashMap;

use super::{NAME, REASON_SLOTS};

/// A reason name as the filter compares it: upper case without `SKB_DROP_REASON_`.
pub(super) fn normalize_reason(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper
        .strip_prefix("SKB_DROP_REASON_")
        .unwrap_or(&upper)
        .to_string()
}

/// Reason names from the `__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, ...)` of the
/// tracepoint's format file.
pub fn parse_reason_names(format: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    let Some(start) = format.find("__print_symbolic(") else {
        return names;
    };
    for entry in format[start..].split('{').skip(1) {
        let Some((body, _)) = entry.split_once('}') else {
            continue;
        };
        let Some((value, name)) = body.split_once(',') else {
            continue;
        };
        let value = value.trim();
        let value = match value.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        };
        let name = name.trim().trim_matches('"');
        if let (Some(value), false) = (value, name.is_empty()) {
            names.insert(value, name.to_string());
        }
    }
    names
}

/// DROPWATCH_REASONS slots of the configured reason names; names the running kernel does not
/// have are logged and match nothing.
pub(super) fn reason_slots(names: &HashMap<u32, String>, wanted: &[String]) -> Vec<u32> {
    let mut slots = Vec::new();
    for name in wanted {
        let name = normalize_reason(name);
        let found: Vec<u32> = names
            .iter()
            .filter(|(_, n)| normalize_reason(n) == name)
            .map(|(code, _)| (*code).min(REASON_SLOTS - 1))
            .collect();
        if found.is_empty() {
            tracing::warn!(probe = NAME, reason = %name, "drop reason unknown to this kernel");
        }
        slots.extend(found);
    }
    slots
}
