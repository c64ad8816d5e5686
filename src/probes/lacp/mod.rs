//! lacp: 802.3ad (LACP) bond slaves whose port stops collecting/distributing become `lacp`
//! documents (upstream's `content`: every /proc/net/bonding/* file, concatenated) and count in
//! `huatuo_bamai_netdev_bonding_lacp_total` (upstream's tracer `netdev_bonding_lacp`, which
//! stores its documents as `lacp`).
//!
//! Upstream hooks a kprobe in the bonding module (`ad_disable_collecting_distributing`); here
//! there are no kprobes, so the same moment is read from rtnetlink: every `RTM_NEWLINK` of a
//! bond slave carries `IFLA_BOND_SLAVE_AD_ACTOR_OPER_PORT_STATE`, and a port that loses the
//! collecting or distributing bit is one event. The bonding driver does not notify every port
//! state change, so while an 802.3ad bond exists the probe also dumps the links every tick.
//! Inactive when the kernel has no bonding driver.

mod tracker;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::rtnetlink::{self, Received};

pub use tracker::{LacpChange, LacpTracker, BOND_MODE_8023AD, COLLECTING_DISTRIBUTING};

const NAME: &str = "lacp";
/// Datagrams handled per tick; the rest wait in the socket for the next tick.
const MAX_DATAGRAMS_PER_TICK: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: 802.3ad bond slaves whose LACP port stops collecting/distributing (rtnetlink
/// RTM_NEWLINK, IFLA_BOND_SLAVE_AD_ACTOR_OPER_PORT_STATE) -> `lacp` documents (content: the
/// /proc/net/bonding/* files) and huatuo_bamai_netdev_bonding_lacp_total. Inactive without a
/// bonding driver.
pub struct LacpConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often notifications are read and, while an 802.3ad bond exists, the links dumped.
    pub interval_ms: u64,
}

impl Default for LacpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(LacpConfig, "lacp");

/// `tracer_data` of a `lacp` document: upstream's `content`, plus ours naming the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LacpData {
    /// Every file of /proc/net/bonding, each as its path, a newline and its text (upstream's).
    pub content: String,
    pub bond: String,
    pub slave: String,
    /// The actor port state before and after (LACP_STATE_* bits; 0x30 = collecting and
    /// distributing).
    pub actor_oper_port_state_before: u8,
    pub actor_oper_port_state: u8,
    pub partner_oper_port_state: Option<u16>,
}

/// Upstream's `content`: each file below `dir` (sorted) as its path, `\n`, its text.
pub fn bonding_content(dir: &std::path::Path) -> std::io::Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut content = String::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        content.push_str(&path.display().to_string());
        content.push('\n');
        content.push_str(&text);
    }
    Ok(content)
}

/// Why the probe cannot run here, `None` when the bonding driver is present.
pub fn missing_bonding_driver(sysfs_root: &std::path::Path) -> Option<String> {
    let masters = sysfs_root.join("class/net/bonding_masters");
    let module = sysfs_root.join("module/bonding");
    if masters.exists() || module.exists() {
        return None;
    }
    Some(format!(
        "the kernel has no bonding driver ({} and {} are absent: CONFIG_BONDING is off or the module is not loaded; enable the probe again after loading it)",
        masters.display(),
        module.display()
    ))
}

pub struct LacpProbe {
    socket: rtnetlink::LinkSocket,
    tracker: LacpTracker,
    ctx: ProbeContext,
    seq: u32,
    events_total: u64,
}

fn read_error(source: std::io::Error) -> ProbeError {
    ProbeError::Read {
        probe: NAME,
        path: "rtnetlink".into(),
        source,
    }
}

impl LacpProbe {
    fn drain(&mut self) -> Result<Vec<LacpChange>, ProbeError> {
        let mut changes = Vec::new();
        for _ in 0..MAX_DATAGRAMS_PER_TICK {
            match self.socket.recv().map_err(read_error)? {
                Received::Empty => break,
                Received::Datagram(len) => {
                    changes.extend(self.tracker.feed(self.socket.datagram(len)));
                }
                Received::Truncated(len) => {
                    self.tracker.malformed_total += 1;
                    tracing::warn!(probe = NAME, len, "rtnetlink datagram too large, skipped");
                }
                // Lost notifications: the next dump shows the state anyway.
                Received::Overrun => self.tracker.malformed_total += 1,
            }
        }
        Ok(changes)
    }

    fn request_dump(&mut self) -> Result<(), ProbeError> {
        self.seq = self.seq.wrapping_add(1);
        self.socket.request_dump(self.seq).map_err(read_error)
    }

    fn publish(&self, change: &LacpChange) {
        let dir = self.ctx.procfs("net/bonding");
        let content = bonding_content(&dir).unwrap_or_else(|e| {
            tracing::warn!(probe = NAME, dir = %dir.display(), error = %e, "cannot read the bonding files");
            String::new()
        });
        tracing::info!(probe = NAME, bond = %change.bond, slave = %change.slave, "LACP port stopped collecting/distributing");
        let data = LacpData {
            content,
            bond: change.bond.clone(),
            slave: change.slave.clone(),
            actor_oper_port_state_before: change.actor_before,
            actor_oper_port_state: change.actor_now,
            partner_oper_port_state: change.partner_now,
        };
        let document = EventDocument::new(
            &self.ctx.hostname,
            &self.ctx.region,
            NAME,
            None,
            0,
            serde_json::to_value(&data).unwrap_or_default(),
        );
        self.ctx.events.publish(document);
    }
}

impl Probe for LacpProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = LacpConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        if let Some(reason) = missing_bonding_driver(&ctx.sysfs_root) {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason,
            });
        }
        let socket = rtnetlink::LinkSocket::open().map_err(read_error)?;
        let mut probe = Self {
            socket,
            tracker: LacpTracker::default(),
            ctx: ctx.clone(),
            seq: 0,
            events_total: 0,
        };
        // The dump's replies are read on the first tick: they set the state, no event.
        probe.request_dump()?;
        Ok(probe)
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let changes = self.drain()?;
        self.events_total += changes.len() as u64;
        for change in &changes {
            self.publish(change);
        }
        if self.tracker.lacp_bonds() > 0 {
            self.request_dump()?;
        }
        out.counter(
            "huatuo_bamai_netdev_bonding_lacp_total",
            "802.3ad bond slave ports that stopped collecting/distributing (upstream's lacp disabled count); cumulative.",
        )
        .push(vec![], self.events_total as f64);
        out.gauge(
            "huatuo_bamai_netdev_bonding_lacp_bonds",
            "802.3ad bonds the lacp probe watches.",
        )
        .push(vec![], self.tracker.lacp_bonds() as f64);
        out.counter(
            "huatuo_bamai_netdev_bonding_lacp_malformed_messages_total",
            "rtnetlink messages or datagrams the lacp probe could not decode, or notifications the kernel dropped.",
        )
        .push(vec![], self.tracker.malformed_total as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
