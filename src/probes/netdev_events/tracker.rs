//! The link state of the watched devices: each link message is compared with the flags last
//! seen for its ifindex, and a change of `IFF_UP` (admin) or `IFF_LOWER_UP` (carrier) becomes an
//! event, as upstream. A device seen for the first time (the start-up dump, or created later) is
//! only remembered: upstream stores no document for its start-up scan.

use std::collections::HashMap;

use serde::Serialize;

use super::message::{LinkMessage, IFF_LOWER_UP, IFF_UP};
use crate::probes::common::name_filter::NameFilter;

/// Upstream's `linkstatus.Types` (names as its `String()`), in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    AdminUp,
    AdminDown,
    CarrierUp,
    CarrierDown,
}

impl LinkStatus {
    pub const ALL: [LinkStatus; 4] = [
        LinkStatus::AdminUp,
        LinkStatus::AdminDown,
        LinkStatus::CarrierUp,
        LinkStatus::CarrierDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::AdminUp => "linkstatus_adminup",
            LinkStatus::AdminDown => "linkstatus_admindown",
            LinkStatus::CarrierUp => "linkstatus_carrierup",
            LinkStatus::CarrierDown => "linkstatus_carrierdown",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// What changed between `old` and `new` flags, admin first (upstream's `linkstatus.Changed`).
pub fn changed(old: u32, new: u32) -> Vec<LinkStatus> {
    let change = old ^ new;
    let mut out = Vec::new();
    if change & IFF_UP != 0 {
        out.push(if new & IFF_UP != 0 {
            LinkStatus::AdminUp
        } else {
            LinkStatus::AdminDown
        });
    }
    if change & IFF_LOWER_UP != 0 {
        out.push(if new & IFF_LOWER_UP != 0 {
            LinkStatus::CarrierUp
        } else {
            LinkStatus::CarrierDown
        });
    }
    out
}

/// `ethtool -i` of a device (empty strings when the driver does not say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverInfo {
    pub driver: String,
    pub version: String,
    pub firmware_version: String,
}

/// `tracer_data` of a `netdev_events` document: upstream's `netdevEventData`, same names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetdevEventData {
    pub ifname: String,
    pub index: i32,
    /// The changes, `", "`-joined: e.g. `linkstatus_admindown, linkstatus_carrierdown`.
    pub linkstatus: String,
    pub mac: String,
    /// Upstream's "found by the start-up scan" flag; such documents are never stored, so it is
    /// always false.
    pub start: bool,
    pub driver: String,
    pub driver_version: String,
    pub firmware_version: String,
}

#[derive(Debug)]
struct Link {
    ifname: String,
    flags: u32,
    driver: DriverInfo,
    counts: [u64; 4],
}

/// One watched device's counters, for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCounts<'a> {
    pub ifname: &'a str,
    pub driver: &'a DriverInfo,
    /// Per [`LinkStatus::ALL`].
    pub counts: [u64; 4],
}

/// The watched devices by ifindex.
#[derive(Debug)]
pub struct LinkTracker {
    filter: NameFilter,
    links: HashMap<i32, Link>,
}

impl LinkTracker {
    pub fn new(filter: NameFilter) -> Self {
        Self {
            filter,
            links: HashMap::new(),
        }
    }

    /// Applies one link message; `driver` is asked once per newly watched device. Returns the
    /// event when the admin or carrier state of a watched device changed.
    pub fn observe(
        &mut self,
        message: &LinkMessage,
        driver: impl FnOnce(&str) -> DriverInfo,
    ) -> Option<NetdevEventData> {
        let known = self
            .links
            .get(&message.index)
            .is_some_and(|l| l.ifname == message.ifname);
        if message.deleted || !self.filter.matches(&message.ifname) {
            // Gone, or renamed to a name outside the list.
            self.links.remove(&message.index);
            return None;
        }
        if !known {
            // New device, or renamed: remember its state, as upstream's start-up scan does.
            self.links.insert(
                message.index,
                Link {
                    ifname: message.ifname.clone(),
                    flags: message.flags,
                    driver: driver(&message.ifname),
                    counts: [0; 4],
                },
            );
            return None;
        }
        let link = self.links.get_mut(&message.index)?;
        let statuses = changed(link.flags, message.flags);
        link.flags = message.flags;
        if statuses.is_empty() {
            return None;
        }
        for status in &statuses {
            link.counts[status.slot()] += 1;
        }
        Some(NetdevEventData {
            ifname: message.ifname.clone(),
            index: message.index,
            linkstatus: statuses
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            mac: message.mac.clone(),
            start: false,
            driver: link.driver.driver.clone(),
            driver_version: link.driver.version.clone(),
            firmware_version: link.driver.firmware_version.clone(),
        })
    }

    /// The watched devices, sorted by name.
    pub fn counts(&self) -> Vec<LinkCounts<'_>> {
        let mut out: Vec<LinkCounts<'_>> = self
            .links
            .values()
            .map(|l| LinkCounts {
                ifname: &l.ifname,
                driver: &l.driver,
                counts: l.counts,
            })
            .collect();
        out.sort_by(|a, b| a.ifname.cmp(b.ifname));
        out
    }
}

/// Link messages in, events and counters out: the probe minus its socket (tests feed it captured
/// datagrams).
#[derive(Debug)]
pub struct LinkWatch {
    pub tracker: LinkTracker,
    /// Sequence number of the `RTM_GETLINK` dump under way.
    pub dump_seq: Option<u32>,
    /// Why the last dump failed (`NLMSG_ERROR` for it), until the next one starts.
    pub dump_error: Option<String>,
    /// Messages (or datagrams) that did not decode, skipped.
    pub malformed_total: u64,
    /// Times the kernel dropped notifications because the socket queue was full.
    pub overruns_total: u64,
}

impl LinkWatch {
    pub fn new(filter: NameFilter) -> Self {
        Self {
            tracker: LinkTracker::new(filter),
            dump_seq: None,
            dump_error: None,
            malformed_total: 0,
            overruns_total: 0,
        }
    }

    /// Applies every message of one datagram, in order; returns the events. Messages that do not
    /// decode are counted, logged and skipped.
    pub fn feed(
        &mut self,
        datagram: &[u8],
        driver: &mut dyn FnMut(&str) -> DriverInfo,
    ) -> Vec<NetdevEventData> {
        let mut events = Vec::new();
        for message in super::message::parse_datagram(datagram) {
            match message {
                Ok(super::message::Message::Link(link)) => {
                    events.extend(self.tracker.observe(&link, &mut *driver));
                }
                Ok(super::message::Message::Done { seq }) if Some(seq) == self.dump_seq => {
                    self.dump_seq = None;
                }
                Ok(super::message::Message::Error { seq, errno })
                    if Some(seq) == self.dump_seq && errno != 0 =>
                {
                    self.dump_seq = None;
                    self.dump_error = Some(format!(
                        "RTM_GETLINK dump failed: {}",
                        std::io::Error::from_raw_os_error(errno)
                    ));
                }
                Ok(_) => {}
                Err(reason) => {
                    self.malformed_total += 1;
                    tracing::warn!(
                        probe = "netdev_events",
                        %reason,
                        "rtnetlink message skipped"
                    );
                }
            }
        }
        events
    }

    /// The linkstatus counters of every watched device and the socket's error counters.
    pub fn export(&self, out: &mut crate::exposition::MetricSet) {
        for (slot, status) in LinkStatus::ALL.iter().enumerate() {
            let family = out.counter(
                &format!("huatuo_bamai_netdev_events_{}_total", status.as_str()),
                match status {
                    LinkStatus::AdminUp => "Times the device was set administratively up (IFF_UP set, rtnetlink RTM_NEWLINK).",
                    LinkStatus::AdminDown => "Times the device was set administratively down (IFF_UP cleared, rtnetlink RTM_NEWLINK).",
                    LinkStatus::CarrierUp => "Times the device gained carrier (IFF_LOWER_UP set, rtnetlink RTM_NEWLINK).",
                    LinkStatus::CarrierDown => "Times the device lost carrier (IFF_LOWER_UP cleared, rtnetlink RTM_NEWLINK).",
                },
            );
            for link in self.tracker.counts() {
                family.push(
                    vec![
                        ("device", link.ifname.to_string()),
                        ("driver", link.driver.driver.clone()),
                        ("driver_version", link.driver.version.clone()),
                        ("firmware_version", link.driver.firmware_version.clone()),
                    ],
                    link.counts[slot] as f64,
                );
            }
        }
        out.counter(
            "huatuo_bamai_netdev_events_malformed_messages_total",
            "rtnetlink messages of the netdev_events probe that did not decode (skipped).",
        )
        .push(vec![], self.malformed_total as f64);
        out.counter(
            "huatuo_bamai_netdev_events_overruns_total",
            "Times the kernel dropped link notifications for the netdev_events probe (socket queue full, ENOBUFS); each one is followed by a full RTM_GETLINK resync.",
        )
        .push(vec![], self.overruns_total as f64);
    }
}
