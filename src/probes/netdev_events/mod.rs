//! netdev_events: link state changes of the configured devices, from rtnetlink `RTM_NEWLINK`
//! notifications (`RTMGRP_LINK`) in the agent's (the host's) network namespace. A change of
//! `IFF_UP` (admin up/down) or `IFF_LOWER_UP` (carrier up/down) becomes one `netdev_events`
//! document (upstream's `tracer_data`: ifname, index, linkstatus, mac, start, driver,
//! driver_version, firmware_version; see [`NetdevEventData`]) and counts in
//! `huatuo_bamai_netdev_events_linkstatus_{adminup,admindown,carrierup,carrierdown}_total`
//! `{device,driver,driver_version,firmware_version}`. No BPF: the socket is drained on every
//! tick. Host events: no container attribution.

mod netlink;
mod tracker;

use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::EventDocument;
use crate::exposition::MetricSet;
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::rtnetlink::{self, message};

pub use message::{
    format_mac, parse_datagram, parse_link, LinkMessage, Message, IFF_LOWER_UP, IFF_UP,
};
pub use tracker::{changed, DriverInfo, LinkStatus, LinkTracker, LinkWatch, NetdevEventData};

const NAME: &str = "netdev_events";
const SOURCE: &str = "rtnetlink RTMGRP_LINK";
/// Datagrams handled per tick; the rest wait in the socket for the next tick.
const MAX_DATAGRAMS_PER_TICK: usize = 4096;
/// How long `start` waits for the start-up dump.
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: link state changes (rtnetlink RTM_NEWLINK, host network namespace) of the devices
/// listed -> `netdev_events` documents (admin up/down = IFF_UP, carrier up/down = IFF_LOWER_UP)
/// and huatuo_bamai_netdev_events_linkstatus_{adminup,admindown,carrierup,carrierdown}_total.
/// Device patterns: exact name, "prefix*" or "re:<regex>".
pub struct NetdevEventsConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// How often the netlink socket is drained: a change is published within one interval.
    pub interval_ms: u64,
    /// Devices to watch (exact names, prefixes ending in `*`, or `re:<regex>`); empty watches
    /// every device. The default covers physical NICs (eth*, en*) and bonds, not the veth
    /// devices containers come and go with.
    pub devices: Vec<String>,
}

impl Default for NetdevEventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            devices: vec!["eth*".into(), "en*".into(), "bond*".into()],
        }
    }
}

impl NetdevEventsConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Prefix).include("devices", &self.devices)
    }

    fn check(&self) -> Result<(), String> {
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(
    NetdevEventsConfig,
    "netdev_events",
    NetdevEventsConfig::check
);

fn driver_of(ifname: &str) -> DriverInfo {
    netlink::driver_info(ifname).unwrap_or_default()
}

fn read_error(source: std::io::Error) -> ProbeError {
    ProbeError::Read {
        probe: NAME,
        path: SOURCE.to_string(),
        source,
    }
}

/// Warns when the agent's network namespace is not pid 1's: the devices seen are then the
/// agent's own, not the host's.
fn warn_if_not_host_netns(ctx: &ProbeContext) {
    let own = std::fs::read_link("/proc/self/ns/net");
    let host = std::fs::read_link(ctx.procfs("1/ns/net"));
    if let (Ok(own), Ok(host)) = (own, host) {
        if own != host {
            tracing::warn!(
                agent = %own.display(),
                host = %host.display(),
                "netdev_events: the agent is not in the host network namespace; it watches the devices of its own namespace (run it with host networking)"
            );
        }
    }
}

pub struct NetdevEventsProbe {
    socket: rtnetlink::LinkSocket,
    watch: LinkWatch,
    ctx: ProbeContext,
    seq: u32,
}

impl NetdevEventsProbe {
    /// Receives what is waiting (at most `max` datagrams); returns the events.
    fn drain(&mut self, max: usize) -> Result<Vec<NetdevEventData>, ProbeError> {
        let mut events = Vec::new();
        for _ in 0..max {
            match self.socket.recv().map_err(read_error)? {
                rtnetlink::Received::Empty => break,
                rtnetlink::Received::Datagram(len) => {
                    let datagram = self.socket.datagram(len);
                    events.extend(self.watch.feed(datagram, &mut driver_of));
                }
                rtnetlink::Received::Truncated(len) => {
                    self.watch.malformed_total += 1;
                    tracing::warn!(probe = NAME, len, "rtnetlink datagram too large, skipped");
                }
                rtnetlink::Received::Overrun => {
                    // Notifications were lost: a fresh dump shows what changed meanwhile.
                    self.watch.overruns_total += 1;
                    tracing::warn!(
                        probe = NAME,
                        "link notifications lost (socket queue full); resynchronising"
                    );
                    if self.watch.dump_seq.is_none() {
                        self.request_dump().map_err(read_error)?;
                    }
                }
            }
        }
        Ok(events)
    }

    fn request_dump(&mut self) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        self.socket.request_dump(self.seq)?;
        self.watch.dump_seq = Some(self.seq);
        self.watch.dump_error = None;
        Ok(())
    }

    fn publish(&self, data: &NetdevEventData) {
        tracing::info!(
            probe = NAME,
            ifname = %data.ifname,
            linkstatus = %data.linkstatus,
            "link state changed"
        );
        let document = EventDocument::new(
            &self.ctx.hostname,
            &self.ctx.region,
            NAME,
            None,
            0,
            serde_json::to_value(data).unwrap_or_default(),
        );
        self.ctx.events.publish(document);
    }
}

impl Probe for NetdevEventsProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = NetdevEventsConfig;

    /// Subscribes, then dumps every link so the devices' current state is known (no documents
    /// for it, as upstream) before the first tick.
    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let filter = settings.filter().map_err(invalid_config(NAME))?;
        warn_if_not_host_netns(ctx);
        let socket = rtnetlink::LinkSocket::open().map_err(|e| {
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
            ) {
                ProbeError::Unsupported {
                    probe: NAME,
                    reason: format!("no NETLINK_ROUTE sockets: {e}"),
                }
            } else {
                read_error(e)
            }
        })?;
        let mut probe = Self {
            socket,
            watch: LinkWatch::new(filter),
            ctx: ctx.clone(),
            seq: 0,
        };
        probe.request_dump().map_err(read_error)?;
        let deadline = Instant::now() + DUMP_TIMEOUT;
        let mut events = Vec::new();
        while probe.watch.dump_seq.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !probe.socket.wait_readable(left) {
                return Err(read_error(std::io::Error::other(format!(
                    "no complete RTM_GETLINK dump reply within {DUMP_TIMEOUT:?}"
                ))));
            }
            events.extend(probe.drain(MAX_DATAGRAMS_PER_TICK)?);
        }
        if let Some(reason) = probe.watch.dump_error.take() {
            return Err(read_error(std::io::Error::other(reason)));
        }
        // Changes notified while the dump was under way are real events.
        for data in &events {
            probe.publish(data);
        }
        Ok(probe)
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let events = self.drain(MAX_DATAGRAMS_PER_TICK)?;
        for data in &events {
            self.publish(data);
        }
        if let Some(reason) = self.watch.dump_error.take() {
            tracing::warn!(probe = NAME, %reason, "resynchronisation failed");
        }
        self.watch.export(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
