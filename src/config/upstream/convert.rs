//! Upstream value syntaxes turned into ours: pcap filters, regex strings, Go listen addresses.

use std::collections::BTreeSet;

/// Protocols our dropwatch filter knows.
const PROTOCOLS: [&str; 5] = ["tcp", "udp", "icmp", "icmpv6", "sctp"];

/// A pcap filter as our dropwatch `protocols` and `ports`, when it is exactly expressible: a
/// disjunction of `[proto] [port N]` terms whose protocols and ports form a full cross product
/// (`tcp`, `tcp or udp`, `tcp port 80 or tcp port 443`, `port 53`). `tcp port 80 or udp port 53`
/// is not (we would also keep tcp:53), nor is anything with hosts, nets or negation.
pub fn pcap_to_drop_filter(filter: &str) -> Result<(Vec<String>, Vec<u16>), String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut terms: Vec<(Option<String>, Option<u16>)> = Vec::new();
    for alternative in filter.split(" or ") {
        let words: Vec<&str> = alternative
            .split_whitespace()
            .filter(|w| *w != "and" && *w != "&&")
            .map(|w| w.trim_matches(|c| c == '(' || c == ')'))
            .filter(|w| !w.is_empty())
            .collect();
        let (proto, port) = match words.as_slice() {
            [proto] => (Some(protocol(proto)?), None),
            ["port", port] => (None, Some(port_number(port)?)),
            [proto, "port", port] => (Some(protocol(proto)?), Some(port_number(port)?)),
            _ => return Err(format!("`{alternative}` is not `[tcp|udp|...] [port N]`")),
        };
        terms.push((proto, port));
    }
    let protocols: BTreeSet<Option<String>> = terms.iter().map(|t| t.0.clone()).collect();
    let ports: BTreeSet<Option<u16>> = terms.iter().map(|t| t.1).collect();
    let mixed = |any_none: bool, len: usize| any_none && len > 1;
    let exact = !mixed(protocols.contains(&None), protocols.len())
        && !mixed(ports.contains(&None), ports.len())
        && protocols.iter().all(|proto| {
            ports
                .iter()
                .all(|port| terms.contains(&(proto.clone(), *port)))
        });
    if !exact {
        return Err(
            "its protocols and ports are not every combination of each other (our filter keeps \
             a drop when its protocol is listed and its port is listed)"
                .into(),
        );
    }
    Ok((
        protocols.into_iter().flatten().collect(),
        ports.into_iter().flatten().collect(),
    ))
}

fn protocol(word: &str) -> Result<String, String> {
    let lower = word.to_ascii_lowercase();
    let lower = if lower == "icmp6" {
        "icmpv6".into()
    } else {
        lower
    };
    if PROTOCOLS.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(format!(
            "`{word}` is not a protocol our filter knows ({})",
            PROTOCOLS.join(", ")
        ))
    }
}

fn port_number(word: &str) -> Result<u16, String> {
    word.parse()
        .map_err(|_| format!("`{word}` is not a port number"))
}

/// An upstream regex string as one of our name/key pattern lists: `""` matches everything
/// upstream (an empty list here), anything else becomes one unanchored `re:` pattern, as
/// upstream matches it.
pub fn regex_list(regex: &str) -> Vec<String> {
    if regex.is_empty() {
        Vec::new()
    } else {
        vec![format!("re:{regex}")]
    }
}

/// Upstream's mount point regex as exact paths: only an alternation of fully anchored literal
/// paths, like the shipped `(^/home$)|(^/$)|(^/boot$)`, means a fixed list.
pub fn anchored_paths(regex: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for alternative in regex.split('|') {
        let inner = alternative
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')');
        let literal = inner
            .strip_prefix('^')
            .and_then(|rest| rest.strip_suffix('$'))
            .filter(|path| {
                path.starts_with('/')
                    && path
                        .chars()
                        .all(|c| c.is_alphanumeric() || "/-_".contains(c))
            });
        match literal {
            Some(path) => paths.push(path.to_string()),
            None => {
                return Err(format!(
                "`{alternative}` is not an anchored path like `(^/home$)`; ours takes exact paths"
            ))
            }
        }
    }
    Ok(paths)
}

/// Go's listen address (`:19704` = every interface) as a socket address.
pub fn listen_address(address: &str) -> Result<String, String> {
    let normalized = match address.rsplit_once(':') {
        Some(("", port)) => format!("0.0.0.0:{port}"),
        Some(("localhost", port)) => format!("127.0.0.1:{port}"),
        _ => address.to_string(),
    };
    normalized
        .parse::<std::net::SocketAddr>()
        .map(|_| normalized.clone())
        .map_err(|_| format!("`{address}` is not `[ip]:port`"))
}
