use super::*;
use crate::probes::common::rtnetlink::message::{
    parse_link_info, BondSlave, IFINFOMSG_LEN, NLMSG_HDRLEN, RTM_DELLINK, RTM_NEWLINK,
};

fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

const NESTED: u16 = 0x8000;

/// An RTM_NEWLINK (or DELLINK) laid out as the kernel's rtnl_fill_ifinfo writes it: ifinfomsg,
/// IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO { KIND, DATA { BOND_MODE } } for a bond or
/// IFLA_LINKINFO { SLAVE_KIND, SLAVE_DATA { STATE, MII_STATUS, AGGREGATOR_ID, ACTOR, PARTNER } }
/// for a bond's slave.
fn link(kind: u16, index: i32, name: &str, master: Option<u32>, info: Vec<u8>) -> Vec<u8> {
    let mut payload = vec![0u8; IFINFOMSG_LEN];
    payload[4..8].copy_from_slice(&index.to_ne_bytes());
    payload[8..12].copy_from_slice(&0x1_1043u32.to_ne_bytes());
    payload.extend(attr(3, format!("{name}\0").as_bytes()));
    if let Some(master) = master {
        payload.extend(attr(10, &master.to_ne_bytes()));
    }
    if !info.is_empty() {
        payload.extend(attr(18 | NESTED, &info));
    }
    let mut msg = Vec::new();
    msg.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend(payload);
    msg
}

fn bond(index: i32, name: &str, mode: u8) -> Vec<u8> {
    let mut info = attr(1, b"bond\0");
    info.extend(attr(2 | NESTED, &attr(1, &[mode])));
    link(RTM_NEWLINK, index, name, None, info)
}

fn slave(index: i32, name: &str, master: u32, actor: Option<u8>) -> Vec<u8> {
    let mut data = attr(1, &[0]);
    data.extend(attr(2, &[0]));
    if let Some(actor) = actor {
        data.extend(attr(6, &1u16.to_ne_bytes()));
        data.extend(attr(7, &[actor]));
        data.extend(attr(8, &0x3du16.to_ne_bytes()));
    }
    let mut info = attr(4, b"bond\0");
    info.extend(attr(5 | NESTED, &data));
    link(RTM_NEWLINK, index, name, Some(master), info)
}

/// Activity, aggregation, synchronisation, collecting, distributing.
const UP: u8 = 0x01 | 0x04 | 0x08 | 0x10 | 0x20;
/// The port fell out of the aggregator: no longer collecting/distributing.
const DOWN: u8 = 0x01 | 0x04;

#[test]
fn link_info_decodes_a_bond_and_its_slave() {
    let bond = bond(7, "bond0", BOND_MODE_8023AD);
    let info = parse_link_info(&bond[NLMSG_HDRLEN + IFINFOMSG_LEN + 12 + 4..]).unwrap();
    assert_eq!(
        (info.kind.as_str(), info.bond_mode),
        ("bond", Some(BOND_MODE_8023AD))
    );
    let mut tracker = LacpTracker::default();
    assert!(tracker.feed(&bond).is_empty());
    assert_eq!(tracker.lacp_bonds(), 1);
    let datagram = slave(8, "eth0", 7, Some(UP));
    let messages = crate::probes::common::rtnetlink::message::parse_datagram(&datagram);
    let Ok(crate::probes::common::rtnetlink::message::Message::Link(link)) = &messages[0] else {
        panic!("{messages:?}");
    };
    assert_eq!(link.master, Some(7));
    assert_eq!(link.info.slave_kind, "bond");
    assert_eq!(
        link.info.bond_slave,
        Some(BondSlave {
            state: Some(0),
            mii_status: Some(0),
            aggregator_id: Some(1),
            actor_oper_port_state: Some(UP),
            partner_oper_port_state: Some(0x3d),
        })
    );
}

#[test]
fn a_port_that_stops_collecting_distributing_is_one_event() {
    let mut tracker = LacpTracker::default();
    let mut datagram = bond(7, "bond0", BOND_MODE_8023AD);
    datagram.extend(slave(8, "eth0", 7, Some(UP)));
    datagram.extend(slave(9, "eth1", 7, Some(UP)));
    assert!(
        tracker.feed(&datagram).is_empty(),
        "the first state is no event"
    );
    // Repeated dumps of the same state are no events.
    assert!(tracker.feed(&slave(8, "eth0", 7, Some(UP))).is_empty());
    let changes = tracker.feed(&slave(8, "eth0", 7, Some(DOWN)));
    assert_eq!(
        changes,
        [LacpChange {
            bond: "bond0".into(),
            slave: "eth0".into(),
            actor_before: UP,
            actor_now: DOWN,
            partner_now: Some(0x3d),
        }]
    );
    assert!(tracker.feed(&slave(8, "eth0", 7, Some(DOWN))).is_empty());
    assert!(
        tracker.feed(&slave(8, "eth0", 7, Some(UP))).is_empty(),
        "coming back is none"
    );
    // Losing only distributing counts too.
    assert_eq!(
        tracker.feed(&slave(8, "eth0", 7, Some(UP & !0x20))).len(),
        1
    );
    // A deleted slave is forgotten: the next one with its index starts afresh.
    tracker.feed(&link(RTM_DELLINK, 9, "eth1", None, Vec::new()));
    assert!(tracker.feed(&slave(9, "eth1", 7, Some(DOWN))).is_empty());
}

#[test]
fn slaves_without_802_3ad_state_and_other_links_are_no_events() {
    let mut tracker = LacpTracker::default();
    tracker.feed(&bond(3, "bond1", 1));
    assert_eq!(tracker.lacp_bonds(), 0, "active-backup");
    assert!(tracker.feed(&slave(4, "eth2", 3, None)).is_empty());
    assert!(tracker.feed(&slave(4, "eth2", 3, None)).is_empty());
    let mut veth = attr(1, b"veth\0");
    veth.extend(attr(2 | NESTED, &attr(1, &[DOWN])));
    assert!(tracker
        .feed(&link(RTM_NEWLINK, 5, "veth0", None, veth))
        .is_empty());
    assert_eq!(tracker.malformed_total, 0);
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    let mut tracker = LacpTracker::default();
    let mut bad = slave(8, "eth0", 7, Some(UP));
    // The last attribute nested in SLAVE_DATA (the partner state: header, u16, padding)
    // claims more bytes than the message has.
    let at = bad.len() - 8;
    bad[at..at + 2].copy_from_slice(&200u16.to_ne_bytes());
    let mut datagram = bad;
    datagram.extend(bond(7, "bond0", BOND_MODE_8023AD));
    assert!(tracker.feed(&datagram).is_empty());
    assert_eq!(tracker.malformed_total, 1);
    assert_eq!(tracker.lacp_bonds(), 1, "the next message still decodes");
    assert!(tracker.feed(&[1, 2, 3]).is_empty());
    assert_eq!(tracker.malformed_total, 2);
}

#[test]
fn content_is_every_bonding_file_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bond1"), "Bonding Mode: IEEE 802.3ad\n").unwrap();
    std::fs::write(dir.path().join("bond0"), "MII Status: up\n").unwrap();
    let content = bonding_content(dir.path()).unwrap();
    let first = dir.path().join("bond0").display().to_string();
    let second = dir.path().join("bond1").display().to_string();
    assert_eq!(
        content,
        format!("{first}\nMII Status: up\n{second}\nBonding Mode: IEEE 802.3ad\n")
    );
    assert!(bonding_content(&dir.path().join("absent")).is_err());
}

#[test]
fn without_a_bonding_driver_the_probe_is_inactive() {
    let root = tempfile::tempdir().unwrap();
    let ctx = crate::probes::testutil::context_at(root.path());
    let err = LacpProbe::start(&LacpConfig::default(), &ctx)
        .err()
        .expect("no bonding driver in an empty sysfs");
    assert!(err.is_unsupported(), "{err}");
    assert!(err.to_string().contains("bonding_masters"), "{err}");
    std::fs::create_dir_all(root.path().join("sys/class/net")).unwrap();
    std::fs::write(root.path().join("sys/class/net/bonding_masters"), "bond0\n").unwrap();
    assert_eq!(missing_bonding_driver(&root.path().join("sys")), None);
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture() {
    let data = LacpData {
        content: "/proc/net/bonding/bond0\nBonding Mode: IEEE 802.3ad\n".into(),
        bond: "bond0".into(),
        slave: "eth0".into(),
        actor_oper_port_state_before: UP,
        actor_oper_port_state: DOWN,
        partner_oper_port_state: Some(0x3d),
    };
    let document = crate::events::EventDocument::new(
        "h",
        "r",
        NAME,
        None,
        0,
        serde_json::to_value(&data).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    assert_eq!(ours["tracer_name"], "lacp");
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/lacp.json"
    ))
    .unwrap();
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &[]);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
}
