//! qdisc: statistics of each network device's root queueing discipline, from an rtnetlink
//! `RTM_GETQDISC` dump (what `tc -s qdisc show` prints) →
//! `huatuo_bamai_netdev_qdisc_{bytes,packets,drops,requeues,overlimits}_total{device,kind}` and
//! `huatuo_bamai_netdev_qdisc_{current_queue_length,backlog}{device,kind}`, as upstream's
//! `netdev_qdisc` collector. Off by default (upstream blacklists it).
//!
//! Only root egress qdiscs (parent `TC_H_ROOT`) are exported, so `device` alone identifies a
//! series: a classful root (htb, mq, ...) already counts what its children sent, and ingress /
//! clsact qdiscs are not egress queues. `noqueue` roots (loopback, veth, bridges) queue nothing
//! and are skipped, as upstream does. The dump runs in the agent's network namespace, which is the
//! host's when the agent runs with host networking (required, as for upstream).

mod dump;
mod message;
mod netlink;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::warn_once::WarnOnce;

pub use dump::{Dump, DumpParser};
pub use message::{Qdisc, QdiscStats};

const NAME: &str = "qdisc";

/// What the errors of a failed dump name as their source.
const SOURCE: &str = "rtnetlink RTM_GETQDISC dump";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Root qdisc of each device (rtnetlink RTM_GETQDISC dump, what `tc -s qdisc` shows) ->
/// huatuo_bamai_netdev_qdisc_{bytes,packets,drops,requeues,overlimits}_total and
/// huatuo_bamai_netdev_qdisc_{current_queue_length,backlog} {device,kind}; noqueue roots are skipped.
/// Off by default, as upstream (netdev_qdisc is in its default BlackList).
pub struct QdiscConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// Devices to export: exact names or prefixes ending in `*`; empty exports every device.
    pub device_included: Vec<String>,
    /// Devices never exported (same syntax); applied after `device_included`.
    pub device_excluded: Vec<String>,
}

impl Default for QdiscConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_ms: 5000,
            device_included: Vec::new(),
            device_excluded: vec!["lo".into(), "docker*".into(), "veth*".into()],
        }
    }
}

impl QdiscConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Prefix)
            .include("device_included", &self.device_included)?
            .exclude("device_excluded", &self.device_excluded)
    }

    fn check(&self) -> Result<(), String> {
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(QdiscConfig, "qdisc", QdiscConfig::check);

/// Where the qdiscs come from: the kernel, or captured replies in tests.
pub trait QdiscSource: Send {
    /// One complete dump of every qdisc.
    fn dump(&mut self) -> Result<Dump, String>;
    /// Device name of `ifindex`; `None` when the device is gone.
    fn ifname(&mut self, ifindex: i32) -> Option<String>;
}

/// The kernel, over a fresh `NETLINK_ROUTE` socket per dump.
struct KernelSource {
    seq: u32,
    buf: Vec<u8>,
}

impl QdiscSource for KernelSource {
    fn dump(&mut self) -> Result<Dump, String> {
        netlink::dump_qdiscs(&mut self.seq, &mut self.buf)
    }

    fn ifname(&mut self, ifindex: i32) -> Option<String> {
        netlink::ifname(ifindex)
    }
}

/// The metric families, in export order: (name suffix, help, counter?).
const FAMILIES: [(&str, &str, bool); 7] = [
    ("bytes_total", "Number of bytes sent by the device's root qdisc.", true),
    ("packets_total", "Number of packets sent by the device's root qdisc.", true),
    ("drops_total", "Number of packets dropped by the device's root qdisc.", true),
    (
        "requeues_total",
        "Number of packets dequeued, not transmitted, and requeued by the device's root qdisc.",
        true,
    ),
    (
        "overlimits_total",
        "Number of overlimit events (packets delayed or dropped by shaping or policing) of the device's root qdisc.",
        true,
    ),
    (
        "current_queue_length",
        "Number of packets currently in the device's root qdisc queue.",
        false,
    ),
    (
        "backlog",
        "Number of bytes currently in the device's root qdisc queue.",
        false,
    ),
];

fn values(stats: &QdiscStats) -> [f64; 7] {
    [
        stats.bytes as f64,
        stats.packets as f64,
        f64::from(stats.drops),
        f64::from(stats.requeues),
        f64::from(stats.overlimits),
        f64::from(stats.qlen),
        f64::from(stats.backlog),
    ]
}

pub struct QdiscProbe {
    filter: NameFilter,
    warn: WarnOnce,
    source: Box<dyn QdiscSource>,
}

impl QdiscProbe {
    /// A probe reading from `source` (tests use captured replies).
    pub fn with_source(
        settings: &QdiscConfig,
        source: Box<dyn QdiscSource>,
    ) -> Result<Self, ProbeError> {
        Ok(Self {
            filter: settings.filter().map_err(invalid_config(NAME))?,
            warn: WarnOnce::default(),
            source,
        })
    }
}

/// Warns when the agent's network namespace is not pid 1's: the qdiscs are then the agent's own.
fn warn_if_not_host_netns(ctx: &ProbeContext) {
    let own = std::fs::read_link("/proc/self/ns/net");
    let host = std::fs::read_link(ctx.procfs("1/ns/net"));
    if let (Ok(own), Ok(host)) = (own, host) {
        if own != host {
            tracing::warn!(
                agent = %own.display(),
                host = %host.display(),
                "qdisc: the agent is not in the host network namespace; it exports the qdiscs of its own namespace (run it with host networking)"
            );
        }
    }
}

impl Probe for QdiscProbe {
    const NAME: &'static str = NAME;
    type Settings = QdiscConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        if let Err(e) = netlink::open_socket() {
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
            ) {
                return Err(ProbeError::Unsupported {
                    probe: NAME,
                    reason: format!("no NETLINK_ROUTE sockets: {e}"),
                });
            }
        }
        warn_if_not_host_netns(ctx);
        Self::with_source(
            settings,
            Box::new(KernelSource {
                seq: 0,
                buf: Vec::new(),
            }),
        )
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let dump = self.source.dump().map_err(|reason| ProbeError::Read {
            probe: NAME,
            path: SOURCE.to_string(),
            source: std::io::Error::other(reason),
        })?;
        for reason in &dump.skipped {
            self.warn.warn(
                reason,
                &format!("{NAME}: {SOURCE}: qdisc message skipped: {reason}"),
            );
        }
        self.warn.end_tick();

        let mut rows: Vec<(String, &Qdisc)> = Vec::new();
        for qdisc in dump
            .qdiscs
            .iter()
            .filter(|q| q.is_root() && q.kind != "noqueue")
        {
            // A device removed since the dump has no name any more: nothing to export.
            let Some(device) = self.source.ifname(qdisc.ifindex) else {
                continue;
            };
            if self.filter.matches(&device) {
                rows.push((device, qdisc));
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));

        let mut samples: Vec<Vec<(Labels, f64)>> = vec![Vec::new(); FAMILIES.len()];
        for (device, qdisc) in &rows {
            let labels: Labels = vec![("device", device.clone()), ("kind", qdisc.kind.clone())];
            for (family, value) in samples.iter_mut().zip(values(&qdisc.stats)) {
                family.push((labels.clone(), value));
            }
        }
        for ((suffix, help, counter), family_samples) in FAMILIES.iter().zip(samples) {
            let name = format!("huatuo_bamai_netdev_qdisc_{suffix}");
            let family = if *counter {
                out.counter(&name, help)
            } else {
                out.gauge(&name, help)
            };
            for (labels, value) in family_samples {
                family.push(labels, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
