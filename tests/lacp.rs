//! The lacp probe on the real kernel. This CI kernel has no bonding driver (CONFIG_BONDING is
//! not set and it loads no modules), so no 802.3ad bond can be made: the probe must be
//! `inactive` naming why. What can be checked for real is the part it shares with the bond
//! case: the kernel's `IFLA_LINKINFO` of the host's links decodes (an ifb device reports kind
//! `ifb`, a veth pair made here `veth`), through the same socket and decoder the probe uses.
//! The 802.3ad state machine is unit-tested on messages laid out as the bonding driver fills
//! them (src/probes/lacp/tests.rs).

mod common;

use std::time::{Duration, Instant};

use huatuo_bamai::core::Probe;
use huatuo_bamai::probes::common::rtnetlink::message::{parse_datagram, Message};
use huatuo_bamai::probes::common::rtnetlink::{LinkSocket, Received};
use huatuo_bamai::probes::lacp::{missing_bonding_driver, LacpConfig, LacpProbe};

fn dump_links() -> Vec<huatuo_bamai::probes::common::rtnetlink::message::LinkMessage> {
    let mut socket = LinkSocket::open().expect("rtnetlink socket");
    socket.request_dump(77).expect("dump request");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut links = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no end of the dump");
        match socket.recv().expect("recv") {
            Received::Datagram(len) => {
                for message in parse_datagram(socket.datagram(len)) {
                    match message.expect("the kernel's messages decode") {
                        Message::Link(link) => links.push(link),
                        Message::Done { seq: 77 } => return links,
                        _ => {}
                    }
                }
            }
            Received::Empty => {
                socket.wait_readable(Duration::from_millis(200));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn inactive_without_a_bonding_driver_and_the_kernels_link_info_decodes() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let ctx = common::host_probe_context();
    let started = LacpProbe::start(&LacpConfig::default(), &ctx);
    match missing_bonding_driver(&ctx.sysfs_root) {
        Some(reason) => {
            let err = started.err().expect("inactive without the bonding driver");
            assert!(err.is_unsupported(), "{err}");
            assert!(err.to_string().contains(&reason), "{err}");
        }
        None => {
            started.expect("the probe runs where bonding exists");
        }
    }
    let netns = common::netns::Netns::create("lacp");
    let host = format!("lacph{}", std::process::id() % 10000);
    let status = std::process::Command::new("ip")
        .args([
            "link", "add", &host, "type", "veth", "peer", "name", "lacpp0",
        ])
        .args(["netns", &netns.name])
        .status()
        .expect("ip");
    assert!(status.success());
    let links = dump_links();
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &host])
        .status();
    let veth = links
        .iter()
        .find(|l| l.ifname == host)
        .expect("the veth made here is in the dump");
    assert_eq!(veth.info.kind, "veth", "{veth:?}");
    assert_eq!(veth.info.bond_slave, None);
    assert_eq!(veth.master, None);
    for link in &links {
        if std::path::Path::new(&format!("/sys/class/net/{}/bonding", link.ifname)).exists() {
            assert_eq!(link.info.kind, "bond", "{link:?}");
        }
        if link.ifname.starts_with("ifb") {
            assert_eq!(link.info.kind, "ifb", "{link:?}");
        }
    }
}
