use super::message::{dump_request, IFINFOMSG_LEN, NLMSG_HDRLEN, RTM_DELLINK, RTM_NEWLINK};
use super::*;
use crate::probes::testutil::fixture_root;

/// The captured datagrams, each with the `# step` that caused it.
fn capture() -> Vec<(String, Vec<u8>)> {
    let path = fixture_root("netdev_events").join("link-events.hex");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut step = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("# step ") {
            step = s.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let bytes = (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                .collect();
            out.push((step.clone(), bytes));
        }
    }
    out
}

fn veth_driver(ifname: &str) -> DriverInfo {
    DriverInfo {
        driver: "veth".into(),
        version: "1.0".into(),
        firmware_version: format!("fw-{ifname}"),
    }
}

fn watch(devices: &[&str]) -> LinkWatch {
    let config = NetdevEventsConfig {
        devices: devices.iter().map(|d| d.to_string()).collect(),
        ..NetdevEventsConfig::default()
    };
    LinkWatch::new(config.filter().unwrap())
}

/// Feeds the whole capture; returns (step, event) pairs.
fn replay(watch: &mut LinkWatch) -> Vec<(String, NetdevEventData)> {
    let mut out = Vec::new();
    for (step, datagram) in capture() {
        if step.starts_with("RTM_GETLINK") {
            // The capture's dump was requested on another socket with seq 7.
            watch.dump_seq = Some(7);
        }
        for event in watch.feed(&datagram, &mut veth_driver) {
            out.push((step.clone(), event));
        }
    }
    out
}

#[test]
fn captured_messages_decode_with_their_names_flags_and_addresses() {
    let capture = capture();
    // The dump reply spans several datagrams.
    let messages: Vec<Message> = capture
        .iter()
        .filter(|(step, _)| step.starts_with("RTM_GETLINK"))
        .flat_map(|(_, datagram)| parse_datagram(datagram))
        .map(|m| m.unwrap())
        .collect();
    let links: Vec<(i32, &str, u32, &str)> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Link(l) => Some((l.index, l.ifname.as_str(), l.flags, l.mac.as_str())),
            _ => None,
        })
        .collect();
    // IFF_LOOPBACK for lo; IFF_BROADCAST | IFF_MULTICAST for the new, down veth pair.
    assert_eq!(
        links,
        vec![
            (1, "lo", 0x8, "00:00:00:00:00:00"),
            (2, "vethB", 0x1002, "02:00:00:00:00:0b"),
            (3, "vethA", 0x1002, "02:00:00:00:00:0a"),
        ]
    );
    assert!(messages.contains(&Message::Done { seq: 7 }));

    let deleted: Vec<(i32, String)> = capture
        .iter()
        .filter(|(step, _)| step == "ip link del vethA")
        .flat_map(|(_, d)| parse_datagram(d))
        .filter_map(|m| match m.unwrap() {
            Message::Link(l) if l.deleted => Some((l.index, l.ifname)),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![(3, "vethA".into()), (2, "vethB".into())]);
}

#[test]
fn the_captured_session_gives_one_event_per_admin_or_carrier_change() {
    let mut watch = watch(&["vethA"]);
    let events = replay(&mut watch);
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|(step, e)| (step.as_str(), e.linkstatus.as_str()))
        .collect();
    // vethA up: admin only (its peer is down, so no carrier); the peer up brings vethA's
    // carrier; the peer down takes it; vethA down clears both bits in one message.
    assert_eq!(
        got,
        vec![
            ("ip link set vethA up", "linkstatus_adminup"),
            ("ip link set vethB up", "linkstatus_carrierup"),
            ("ip link set vethB down", "linkstatus_carrierdown"),
            ("ip link set vethB up", "linkstatus_carrierup"),
            (
                "ip link set vethA down",
                "linkstatus_admindown, linkstatus_carrierdown"
            ),
        ]
    );
    let first = &events[0].1;
    assert_eq!(
        first,
        &NetdevEventData {
            ifname: "vethA".into(),
            index: 3,
            linkstatus: "linkstatus_adminup".into(),
            mac: "02:00:00:00:00:0a".into(),
            start: false,
            driver: "veth".into(),
            driver_version: "1.0".into(),
            firmware_version: "fw-vethA".into(),
        }
    );
    assert_eq!(watch.malformed_total, 0);
    assert_eq!(watch.dump_seq, None, "the dump's NLMSG_DONE ends it");
    // vethA was deleted at the end of the capture: nothing left to export.
    assert!(watch.tracker.counts().is_empty());
}

#[test]
fn counters_follow_the_events_of_each_device() {
    let mut watch = watch(&["veth*"]);
    // Everything but the final deletion.
    for (step, datagram) in capture() {
        if step != "ip link del vethA" {
            watch.feed(&datagram, &mut veth_driver);
        }
    }
    let counts: Vec<(&str, [u64; 4])> = watch
        .tracker
        .counts()
        .iter()
        .map(|c| (c.ifname, c.counts))
        .collect();
    // [adminup, admindown, carrierup, carrierdown]
    assert_eq!(
        counts,
        vec![("vethA", [1, 1, 2, 2]), ("vethB", [2, 1, 2, 2])]
    );
    let mut set = MetricSet::default();
    watch.export(&mut set);
    let family = set
        .families
        .iter()
        .find(|f| f.name == "huatuo_bamai_netdev_events_linkstatus_carrierdown_total")
        .unwrap();
    let samples: Vec<(Vec<(&str, &str)>, f64)> = family
        .samples
        .iter()
        .map(|s| {
            (
                s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect(),
                s.value,
            )
        })
        .collect();
    assert_eq!(
        samples,
        vec![
            (
                vec![
                    ("device", "vethA"),
                    ("driver", "veth"),
                    ("driver_version", "1.0"),
                    ("firmware_version", "fw-vethA"),
                ],
                2.0
            ),
            (
                vec![
                    ("device", "vethB"),
                    ("driver", "veth"),
                    ("driver_version", "1.0"),
                    ("firmware_version", "fw-vethB"),
                ],
                2.0
            ),
        ]
    );
}

#[test]
fn devices_outside_the_list_produce_nothing() {
    let mut watch = watch(&["eth*", "re:^vethC$"]);
    assert!(replay(&mut watch).is_empty());
    assert!(watch.tracker.counts().is_empty());
}

#[test]
fn the_driver_is_asked_once_per_new_device() {
    let mut watch = watch(&["vethA"]);
    let mut asked = Vec::new();
    for (_, datagram) in capture() {
        watch.feed(&datagram, &mut |name: &str| {
            asked.push(name.to_string());
            DriverInfo::default()
        });
    }
    assert_eq!(asked, vec!["vethA"]);
}

// ---- building and corrupting messages ----

fn link_message(kind: u16, index: i32, flags: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 0, 1, 0]); // family, pad, type ARPHRD_ETHER
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    for (kind, value) in attrs {
        let len = 4 + value.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&[0; 10]);
    out.extend_from_slice(&body);
    out
}

fn eth(index: i32, name: &str, flags: u32) -> Vec<u8> {
    let mut ifname = name.as_bytes().to_vec();
    ifname.push(0);
    link_message(
        RTM_NEWLINK,
        index,
        flags,
        &[(3, &ifname), (1, &[0x52, 0x54, 0, 0xab, 0xcd, 0xef])],
    )
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    let mut watch = watch(&["eth*"]);
    let mut driver = |_: &str| DriverInfo::default();
    watch.feed(&eth(5, "eth0", IFF_UP | IFF_LOWER_UP), &mut driver);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a 3-byte datagram", vec![1, 2, 3], "truncated nlmsghdr"),
        (
            "a length past the datagram",
            {
                let mut m = eth(5, "eth0", 0);
                m[0..4].copy_from_slice(&4096u32.to_ne_bytes());
                m
            },
            "length 4096 out of bounds",
        ),
        (
            "a short ifinfomsg",
            {
                let mut m = link_message(RTM_NEWLINK, 5, 0, &[]);
                m.truncate(NLMSG_HDRLEN + 8);
                m[0..4].copy_from_slice(&((NLMSG_HDRLEN + 8) as u32).to_ne_bytes());
                m
            },
            "want 16",
        ),
        (
            "an attribute past the message",
            {
                let mut m = eth(5, "eth0", 0);
                let at = NLMSG_HDRLEN + IFINFOMSG_LEN;
                m[at..at + 2].copy_from_slice(&200u16.to_ne_bytes());
                m
            },
            "attribute 3 length 200 out of bounds",
        ),
        (
            "no IFLA_IFNAME",
            link_message(RTM_NEWLINK, 5, 0, &[(1, &[1, 2, 3, 4, 5, 6])]),
            "no IFLA_IFNAME",
        ),
        (
            "a name that is not UTF-8",
            link_message(RTM_NEWLINK, 5, 0, &[(3, &[0xff, 0xfe, 0])]),
            "not UTF-8",
        ),
    ];
    for (i, (what, bytes, reason)) in cases.iter().enumerate() {
        let parsed = parse_datagram(bytes);
        let err = parsed
            .iter()
            .find_map(|m| m.as_ref().err())
            .unwrap_or_else(|| panic!("{what}: no error in {parsed:?}"));
        assert!(err.contains(reason), "{what}: {err}");
        assert!(watch.feed(bytes, &mut driver).is_empty(), "{what}");
        assert_eq!(watch.malformed_total, i as u64 + 1, "{what}");
    }
    // A bad message does not hide the good one after it, and eth0's state was not touched.
    let mut datagram = link_message(RTM_NEWLINK, 5, 0, &[]);
    datagram.extend(eth(5, "eth0", IFF_UP));
    let events = watch.feed(&datagram, &mut driver);
    assert_eq!(watch.malformed_total, cases.len() as u64 + 1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].linkstatus, "linkstatus_carrierdown");
    assert_eq!(events[0].mac, "52:54:00:ab:cd:ef");
}

#[test]
fn renames_and_deletions_forget_the_device() {
    let mut watch = watch(&["eth*"]);
    let mut driver = |_: &str| DriverInfo::default();
    watch.feed(&eth(5, "eth0", IFF_UP), &mut driver);
    // Renamed out of the list, then back: a fresh device, its first state is not an event.
    watch.feed(&eth(5, "wan0", 0), &mut driver);
    assert!(watch.tracker.counts().is_empty());
    assert!(watch.feed(&eth(5, "eth9", 0), &mut driver).is_empty());
    assert_eq!(watch.feed(&eth(5, "eth9", IFF_UP), &mut driver).len(), 1);
    let mut deleted = eth(5, "eth9", IFF_UP);
    deleted[4..6].copy_from_slice(&RTM_DELLINK.to_ne_bytes());
    assert!(watch.feed(&deleted, &mut driver).is_empty());
    assert!(watch.tracker.counts().is_empty());
    // Re-created with the same index and name: again a new device.
    assert!(watch.feed(&eth(5, "eth9", 0), &mut driver).is_empty());
}

#[test]
fn a_failed_dump_is_reported_and_other_errors_are_not_ours() {
    let mut watch = watch(&["eth*"]);
    watch.dump_seq = Some(3);
    let error = |seq: u32, errno: i32| {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&dump_request(seq)[..16]);
        m
    };
    watch.feed(&error(9, libc::EBUSY), &mut |_: &str| DriverInfo::default());
    assert_eq!(watch.dump_seq, Some(3));
    watch.feed(&error(3, libc::EBUSY), &mut |_: &str| DriverInfo::default());
    assert_eq!(watch.dump_seq, None);
    let reason = watch.dump_error.unwrap();
    assert!(reason.starts_with("RTM_GETLINK dump failed: "), "{reason}");
    assert_eq!(watch.malformed_total, 0);
}

#[test]
fn changes_are_named_admin_first_as_upstream() {
    let cases = [
        (0, 0, vec![]),
        (0, IFF_UP, vec![LinkStatus::AdminUp]),
        (IFF_UP, 0, vec![LinkStatus::AdminDown]),
        (0, IFF_LOWER_UP, vec![LinkStatus::CarrierUp]),
        (IFF_LOWER_UP, 0, vec![LinkStatus::CarrierDown]),
        (
            0,
            IFF_UP | IFF_LOWER_UP,
            vec![LinkStatus::AdminUp, LinkStatus::CarrierUp],
        ),
        (
            IFF_UP,
            IFF_LOWER_UP,
            vec![LinkStatus::AdminDown, LinkStatus::CarrierUp],
        ),
        // IFF_RUNNING (0x40) and IFF_PROMISC (0x100) are not link status changes.
        (IFF_UP, IFF_UP | 0x40 | 0x100, vec![]),
    ];
    for (old, new, want) in cases {
        assert_eq!(changed(old, new), want, "{old:#x} -> {new:#x}");
    }
    let names: Vec<&str> = LinkStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "linkstatus_adminup",
            "linkstatus_admindown",
            "linkstatus_carrierup",
            "linkstatus_carrierdown"
        ]
    );
}

#[test]
fn the_device_list_is_checked_at_load() {
    let config = NetdevEventsConfig {
        devices: vec!["eth*0".into()],
        ..NetdevEventsConfig::default()
    };
    let err = config.check().unwrap_err();
    assert!(err.starts_with("devices: pattern `eth*0`"), "{err}");
    let config = NetdevEventsConfig {
        devices: vec!["re:(eth".into()],
        ..NetdevEventsConfig::default()
    };
    assert!(config
        .check()
        .unwrap_err()
        .contains("not a valid regular expression"));
    let defaults = NetdevEventsConfig::default().filter().unwrap();
    for name in ["eth0", "ens3", "enp0s31f6", "bond0"] {
        assert!(defaults.matches(name), "{name}");
    }
    for name in ["lo", "veth1a2b", "docker0", "cni0", "flannel.1"] {
        assert!(!defaults.matches(name), "{name}");
    }
    assert_eq!(format_mac(&[]), "");
}
