//! Comparing a document's shape with an upstream HUATUO document: every field path of
//! upstream's with the same JSON type (tests hold one upstream fixture per event).

/// Field paths upstream leaves out of a `tracer_name` document when they are empty or zero (its
/// `omitempty` JSON tags, `core/events/*.go`, `pkg/types/*.go`, `internal/packet/types.go`):
/// the `optional` of [`shape_mismatches`] when comparing with an upstream fixture.
pub fn upstream_omitempty(tracer_name: &str) -> Vec<&'static str> {
    let mut paths = vec![
        "container_id",
        "container_hostname",
        "container_host_namespace",
        "container_type",
        "container_qos",
    ];
    paths.extend_from_slice(match tracer_name {
        "dropwatch" => &[
            "tracer_data.type",
            "tracer_data.drop_reason_group",
            "tracer_data.drop_location",
            "tracer_data.source",
            "tracer_data.container_id",
            "tracer_data.packet_skb_addr",
            "tracer_data.layers",
            "tracer_data.layers.ether",
            "tracer_data.layers.ipv4",
            "tracer_data.layers.ipv4.flags",
            "tracer_data.layers.ipv4.frag_offset",
            "tracer_data.layers.ipv6",
            "tracer_data.layers.tcp",
            "tracer_data.layers.tcp.urgent",
            "tracer_data.layers.tcp.sk_state",
            "tracer_data.layers.udp",
            "tracer_data.layers.icmp",
            "tracer_data.layers.icmp.id",
            "tracer_data.layers.icmp.seq",
            "tracer_data.layers.arp",
        ][..],
        "oom" => &[
            "tracer_data.trigger.container_id",
            "tracer_data.trigger.container_hostname",
            "tracer_data.trigger.cgroup",
            "tracer_data.trigger.cgroup.path",
            "tracer_data.trigger.cgroup.current",
            "tracer_data.trigger.cgroup.max",
            "tracer_data.trigger.cgroup.stat",
            "tracer_data.trigger.cgroup.stat.*",
            "tracer_data.trigger.cgroup.events",
            "tracer_data.trigger.cgroup.events.*",
            "tracer_data.victim.container_id",
            "tracer_data.victim.container_hostname",
            "tracer_data.victim.cgroup",
            "tracer_data.victim.cgroup.path",
            "tracer_data.victim.cgroup.current",
            "tracer_data.victim.cgroup.max",
            "tracer_data.victim.cgroup.stat",
            "tracer_data.victim.cgroup.stat.*",
            "tracer_data.victim.cgroup.events",
            "tracer_data.victim.cgroup.events.*",
            "tracer_data.memory_snapshot",
            "tracer_data.memory_snapshot.host_meminfo",
        ][..],
        "tcp_retransmit" => &[
            "tracer_data.source",
            "tracer_data.container_id",
            "tracer_data.memory_cgroup_css_addr",
            "tracer_data.net_namespace_cookie",
            "tracer_data.net_namespace_inum",
            "tracer_data.tcp_end_seq",
            "tracer_data.tcp_flags",
            "tracer_data.reord_seen",
            "tracer_data.dsack_dups",
            "tracer_data.skb_addr",
            "tracer_data.drop_location",
        ][..],
        _ => &[][..],
    });
    paths
}

/// Where `ours` differs in shape from `upstream` (an upstream document, e.g. a fixture of
/// tests/fixtures/upstream/documents/): every field path of `upstream` must exist in `ours` with
/// the same JSON type (a null in `upstream` matches anything; each element of an array of `ours`
/// is checked against the first element of upstream's). Paths listed in `optional` (`a.b.c`)
/// may be missing: upstream omits them too when empty. An object listed as `a.b.*` is a map
/// whose keys are data (memory.stat keys differ by kernel): each of its values in `ours` is
/// checked against upstream's first value instead. Empty when the shapes agree.
pub fn shape_mismatches(
    upstream: &serde_json::Value,
    ours: &serde_json::Value,
    optional: &[&str],
) -> Vec<String> {
    fn kind(value: &serde_json::Value) -> &'static str {
        match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }
    fn walk(
        upstream: &serde_json::Value,
        ours: &serde_json::Value,
        path: &str,
        optional: &[&str],
        out: &mut Vec<String>,
    ) {
        if upstream.is_null() {
            return;
        }
        if kind(upstream) != kind(ours) {
            out.push(format!(
                "{path}: upstream has a {}, ours a {}",
                kind(upstream),
                kind(ours)
            ));
            return;
        }
        match (upstream, ours) {
            (serde_json::Value::Object(up), serde_json::Value::Object(our))
                if optional.contains(&format!("{path}.*").as_str()) =>
            {
                if let Some(first) = up.values().next() {
                    for (key, mine) in our {
                        walk(first, mine, &format!("{path}.{key}"), optional, out);
                    }
                }
            }
            (serde_json::Value::Object(up), serde_json::Value::Object(our)) => {
                for (key, value) in up {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    match our.get(key) {
                        Some(mine) => walk(value, mine, &child, optional, out),
                        None if optional.contains(&child.as_str()) => {}
                        None => out.push(format!("{child}: missing")),
                    }
                }
            }
            (serde_json::Value::Array(up), serde_json::Value::Array(our)) => {
                if let Some(first) = up.first() {
                    for (i, mine) in our.iter().enumerate() {
                        walk(first, mine, &format!("{path}[{i}]"), optional, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(upstream, ours, "", optional, &mut out);
    out
}
