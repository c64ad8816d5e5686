//! Upstream's tracer and collector names (what `BlackList` and `--disable-tracing` take) and the
//! probe of ours that does the same work.

/// Upstream name → our probe (`probes.<name>`), `None` where we have no counterpart yet.
/// Several upstream names can share one probe of ours (`memory_reclaim` covers three).
const TRACERS: &[(&str, Option<&str>)] = &[
    ("arp", Some("arp")),
    // AutoTracing triggers: one probe each, same names.
    ("cpuidle", Some("cpuidle")),
    ("cpusys", Some("cpusys")),
    ("dload", Some("dload")),
    ("iotracing", Some("iotracing")),
    ("memburst", Some("memburst")),
    ("cpu_stat", Some("cpu_stat")),
    ("cpu_util", Some("cpu_util")),
    ("diskio", Some("diskio")),
    ("dropwatch", Some("dropwatch")),
    ("hungtask", Some("hungtask")),
    ("iolatency", Some("iolatency")),
    ("loadavg", Some("loadavg")),
    ("memory_buddyinfo", Some("memory_buddyinfo")),
    ("memory_events", Some("memory_events")),
    // Host direct reclaim/compaction stalls, memcg reclaims and the reclaim event: one probe here.
    ("memory_free", Some("memory_reclaim")),
    ("memory_reclaim", Some("memory_reclaim")),
    ("memory_reclaim_events", Some("memory_reclaim")),
    ("memory_vmstat", Some("memory_vmstat")),
    ("mountpoint_perm", Some("mountpoint")),
    ("net_rx_latency", Some("net_rx_latency")),
    ("netdev", Some("netdev")),
    // Upstream stores its documents as tracer `lacp`: the name of ours.
    ("netdev_bonding_lacp", Some("lacp")),
    ("netdev_events", Some("netdev_events")),
    ("netdev_hw", Some("netdev_hw")),
    ("netdev_qdisc", Some("qdisc")),
    ("netdev_txqueue_timeout", Some("netdev_txqueue_timeout")),
    ("netstat", Some("netstat")),
    ("oom", Some("oom")),
    ("ras", Some("ras")),
    ("runqlat", Some("runqlat")),
    ("sched_tick", Some("sched_tick")),
    ("sockstat", Some("sockstat")),
    // tcp_memory_* comes from our sockstat probe.
    ("tcp_memory", Some("sockstat")),
    ("softirq", Some("softirq")),
    ("softlockup", Some("softlockup")),
    ("tcp_retransmit", Some("tcp_retransmit")),
    ("ascend_npu", None),
    ("memory_others", None),
    ("metax_gpu", None),
    ("netdev_dcb", None),
    ("netdev_rdma_link", None),
];

/// What an upstream tracer name is here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracer {
    /// Our probe doing the same work.
    Probe(&'static str),
    /// An upstream feature without a counterpart here (yet).
    Missing,
    /// Not a name upstream registers.
    Unknown,
}

/// Looks up one upstream tracer/collector name.
pub fn tracer(upstream: &str) -> Tracer {
    match TRACERS.iter().find(|(name, _)| *name == upstream) {
        Some((_, Some(ours))) => Tracer::Probe(ours),
        Some((_, None)) => Tracer::Missing,
        None => Tracer::Unknown,
    }
}

/// Our probes that have upstream counterparts, each with every upstream name it covers.
pub fn probes_with_counterparts() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (upstream, ours) in TRACERS {
        let Some(ours) = ours else { continue };
        match out.iter_mut().find(|(probe, _)| probe == ours) {
            Some((_, names)) => names.push(upstream),
            None => out.push((ours, vec![upstream])),
        }
    }
    out
}

/// Every upstream name, for error messages.
pub fn upstream_names() -> Vec<&'static str> {
    TRACERS.iter().map(|(name, _)| *name).collect()
}
