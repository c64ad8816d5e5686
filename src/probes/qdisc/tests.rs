use std::collections::HashMap;

use super::dump::dump_request;
use super::message::{parse_qdisc, TC_H_ROOT};
use super::*;
use crate::probes::testutil::{
    assert_same_series, collect_text, expected, fixture_root, real_proc_context, render,
};

/// A captured reply: the datagrams (hex lines) and the `# link <index> <name>` table.
struct Capture {
    datagrams: Vec<Vec<u8>>,
    links: HashMap<i32, String>,
    /// The `tc -s qdisc show` output recorded in the comments.
    tc: String,
}

fn capture(name: &str) -> Capture {
    let path = fixture_root("qdisc").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut capture = Capture {
        datagrams: Vec::new(),
        links: HashMap::new(),
        tc: String::new(),
    };
    for line in text.lines() {
        if let Some(link) = line.strip_prefix("# link ") {
            let (index, name) = link.split_once(' ').unwrap();
            capture
                .links
                .insert(index.parse().unwrap(), name.to_string());
        } else if let Some(tc) = line.strip_prefix("#   ") {
            capture.tc.push_str(tc);
            capture.tc.push('\n');
        } else if !line.starts_with('#') && !line.is_empty() {
            let bytes = (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                .collect();
            capture.datagrams.push(bytes);
        }
    }
    capture
}

fn parse_datagrams(seq: u32, datagrams: &[Vec<u8>]) -> Result<Dump, String> {
    let mut parser = DumpParser::new(seq);
    for datagram in datagrams {
        if parser.feed(datagram)? {
            break;
        }
    }
    parser.finish()
}

/// Replays a capture as the kernel would answer.
struct FixtureSource {
    result: Result<Vec<Vec<u8>>, String>,
    links: HashMap<i32, String>,
}

impl QdiscSource for FixtureSource {
    fn dump(&mut self) -> Result<Dump, String> {
        parse_datagrams(1, self.result.as_ref().map_err(Clone::clone)?)
    }

    fn ifname(&mut self, ifindex: i32) -> Option<String> {
        self.links.get(&ifindex).cloned()
    }
}

fn fixture_probe(config: &QdiscConfig, capture: Capture) -> QdiscProbe {
    QdiscProbe::with_source(
        config,
        Box::new(FixtureSource {
            result: Ok(capture.datagrams),
            links: capture.links,
        }),
    )
    .unwrap()
}

/// One qdisc of `tc -s qdisc show` output.
#[derive(Debug, Clone, PartialEq)]
struct TcQdisc {
    kind: String,
    handle: String,
    dev: String,
    root: bool,
    /// `1:3` for a child, `ffff:fff1` for ingress; `None` for the root.
    parent: Option<String>,
    bytes: u64,
    packets: u64,
    drops: u64,
    overlimits: u64,
    requeues: u64,
    /// `None` when tc printed a scaled size (`12Kb`).
    backlog: Option<u64>,
    qlen: u64,
}

fn number(field: &str) -> u64 {
    field
        .trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {field}"))
}

fn parse_tc(text: &str) -> Vec<TcQdisc> {
    let mut out: Vec<TcQdisc> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("qdisc") => out.push(TcQdisc {
                kind: words[1].to_string(),
                handle: words[2].to_string(),
                dev: words[4].to_string(),
                root: words[5] == "root",
                parent: (words[5] == "parent").then(|| words[6].to_string()),
                bytes: 0,
                packets: 0,
                drops: 0,
                overlimits: 0,
                requeues: 0,
                backlog: None,
                qlen: 0,
            }),
            // Sent 1090 bytes 2 pkt (dropped 36, overlimits 39 requeues 0)
            Some("Sent") => {
                let q = out.last_mut().unwrap();
                q.bytes = number(words[1]);
                q.packets = number(words[3]);
                q.drops = number(words[6]);
                q.overlimits = number(words[8]);
                q.requeues = number(words[10]);
            }
            // backlog 3000b 3p requeues 0
            Some("backlog") => {
                let q = out.last_mut().unwrap();
                q.backlog = words[1].strip_suffix('b').and_then(|b| b.parse().ok());
                q.qlen = number(words[2]);
            }
            _ => {}
        }
    }
    out
}

/// `tc`'s handle notation of a qdisc handle (`1:`, `ffff:`, `0:`).
fn tc_handle(handle: u32) -> String {
    format!("{:x}:", handle >> 16)
}

/// `tc`'s notation of a parent (`1:3`, `ffff:fff1`).
fn tc_parent(parent: u32) -> String {
    format!("{:x}:{:x}", parent >> 16, parent & 0xffff)
}

/// Every qdisc of `tc` is in the dump with the same kind, place and counters.
fn assert_matches_tc(dump: &Dump, links: &dyn Fn(i32) -> Option<String>, tc: &[TcQdisc]) {
    assert_eq!(dump.qdiscs.len(), tc.len(), "{dump:#?}\n{tc:#?}");
    for want in tc {
        let got = dump
            .qdiscs
            .iter()
            .find(|q| {
                links(q.ifindex).as_deref() == Some(want.dev.as_str())
                    && q.kind == want.kind
                    && tc_handle(q.handle) == want.handle
                    && q.is_root() == want.root
                    && (q.is_root() || want.parent == Some(tc_parent(q.parent)))
            })
            .unwrap_or_else(|| panic!("{want:?} not in {dump:#?}"));
        let s = got.stats;
        assert_eq!(
            (
                s.bytes,
                s.packets,
                u64::from(s.drops),
                u64::from(s.overlimits),
                u64::from(s.requeues),
                u64::from(s.qlen)
            ),
            (
                want.bytes,
                want.packets,
                want.drops,
                want.overlimits,
                want.requeues,
                want.qlen
            ),
            "{want:?}"
        );
        if let Some(backlog) = want.backlog {
            assert_eq!(u64::from(s.backlog), backlog, "{want:?}");
        }
    }
}

#[test]
#[cfg(target_endian = "little")]
fn decodes_a_captured_dump_like_tc() {
    let capture = capture("netns-dump.hex");
    let dump = parse_datagrams(1, &capture.datagrams).unwrap();
    assert!(dump.skipped.is_empty(), "{:?}", dump.skipped);
    let tc = parse_tc(&capture.tc);
    assert_eq!(tc.len(), 13);
    assert_matches_tc(&dump, &|i| capture.links.get(&i).cloned(), &tc);

    let tbf = dump.qdiscs.iter().find(|q| q.kind == "tbf").unwrap();
    assert_eq!(
        (tbf.ifindex, tbf.handle, tbf.parent),
        (3, 0x0001_0000, TC_H_ROOT)
    );
    assert_eq!(
        tbf.stats,
        QdiscStats {
            bytes: 1090,
            packets: 2,
            drops: 36,
            requeues: 0,
            overlimits: 39,
            qlen: 3,
            backlog: 3000,
        }
    );
    let ingress = dump.qdiscs.iter().find(|q| q.kind == "ingress").unwrap();
    assert_eq!((ingress.parent, ingress.is_root()), (0xFFFF_FFF1, false));
    let pfifo = dump.qdiscs.iter().find(|q| q.kind == "pfifo").unwrap();
    assert_eq!(pfifo.parent, 0x0001_0010, "child of class 1:10");
    assert_eq!(
        dump.qdiscs.iter().filter(|q| q.is_root()).count(),
        7,
        "lo, v0, v1, m0, m1, h0, h1"
    );
}

#[test]
#[cfg(target_endian = "little")]
fn decodes_the_build_host_dump() {
    let capture = capture("host-dump.hex");
    let dump = parse_datagrams(1, &capture.datagrams).unwrap();
    assert_matches_tc(
        &dump,
        &|i| capture.links.get(&i).cloned(),
        &parse_tc(&capture.tc),
    );
    let kinds: Vec<&str> = dump.qdiscs.iter().map(|q| q.kind.as_str()).collect();
    assert_eq!(kinds, ["noqueue", "pfifo_fast"]);
}

#[test]
#[cfg(target_endian = "little")]
fn exports_root_qdiscs_of_the_captured_dump() {
    let mut probe = fixture_probe(&QdiscConfig::default(), capture("netns-dump.hex"));
    let text = collect_text(&mut probe);
    assert_same_series(&text, &expected("qdisc.txt"));
    for family in ["bytes", "packets", "drops", "requeues", "overlimits"] {
        assert!(
            text.contains(&format!(
                "# TYPE huatuo_bamai_netdev_qdisc_{family}_total counter"
            )),
            "{text}"
        );
    }
    assert!(text.contains("# TYPE huatuo_bamai_netdev_qdisc_backlog gauge"));
    assert!(text.contains("# TYPE huatuo_bamai_netdev_qdisc_current_queue_length gauge"));
    // Children (pfifo, pfifo_fast), ingress and noqueue roots are not exported.
    for absent in ["pfifo\"", "pfifo_fast", "ingress", "noqueue"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
}

#[test]
#[cfg(target_endian = "little")]
fn device_lists_filter_devices() {
    let config = QdiscConfig {
        device_included: vec!["h*".into(), "v*".into()],
        device_excluded: vec!["v0".into()],
        ..QdiscConfig::default()
    };
    let text = collect_text(&mut fixture_probe(&config, capture("netns-dump.hex")));
    let devices: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_netdev_qdisc_bytes_total"))
        .collect();
    assert_eq!(
        devices,
        ["huatuo_bamai_netdev_qdisc_bytes_total{device=\"h0\",kind=\"htb\"} 9090"]
    );
    // With the default list, eth0 of the build host is exported and lo (noqueue, excluded) not.
    let text = collect_text(&mut fixture_probe(
        &QdiscConfig::default(),
        capture("host-dump.hex"),
    ));
    assert!(text.contains(
        "huatuo_bamai_netdev_qdisc_packets_total{device=\"eth0\",kind=\"pfifo_fast\"} 3300"
    ));
    assert!(!text.contains("\"lo\""), "{text}");

    let bad = QdiscConfig {
        device_excluded: vec!["*eth".into()],
        ..QdiscConfig::default()
    };
    let err = crate::config::Section::validate(&bad)
        .map_err(|e| e.reason)
        .unwrap_err();
    assert!(err.starts_with("device_excluded: pattern `*eth`"), "{err}");
    let err = QdiscProbe::with_source(
        &bad,
        Box::new(FixtureSource {
            result: Ok(Vec::new()),
            links: HashMap::new(),
        }),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("qdisc: malformed config [probes.qdisc]: device_excluded"),
        "{err}"
    );
}

#[test]
#[cfg(target_endian = "little")]
fn devices_gone_since_the_dump_are_skipped() {
    let mut capture = capture("netns-dump.hex");
    capture.links.remove(&3); // v0
    let text = collect_text(&mut fixture_probe(&QdiscConfig::default(), capture));
    assert!(!text.contains("tbf"), "{text}");
    assert!(text.contains("device=\"m0\""), "{text}");
}

#[test]
fn a_failed_dump_fails_the_tick_naming_the_source() {
    let mut probe = QdiscProbe::with_source(
        &QdiscConfig::default(),
        Box::new(FixtureSource {
            result: Err("recv RTM_GETQDISC reply: Connection refused".into()),
            links: HashMap::new(),
        }),
    )
    .unwrap();
    let err = probe.collect(&mut MetricSet::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "qdisc: cannot read rtnetlink RTM_GETQDISC dump: recv RTM_GETQDISC reply: Connection refused"
    );
}

#[test]
fn default_config_is_off_with_upstreams_device_lists() {
    let config = QdiscConfig::default();
    assert!(!config.enabled);
    assert_eq!(config.interval_ms, 5000);
    assert!(config.device_included.is_empty());
    assert_eq!(config.device_excluded, ["lo", "docker*", "veth*"]);
    assert_eq!(
        crate::config::Section::validate(&config).map_err(|e| e.reason),
        Ok(())
    );
}

// ---- building and corrupting messages ----

fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(payload);
    while msg.len() % 4 != 0 {
        msg.push(0);
    }
    msg
}

fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    attr.extend_from_slice(&kind.to_ne_bytes());
    attr.extend_from_slice(payload);
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    attr
}

fn tcmsg(ifindex: i32, handle: u32, parent: u32) -> Vec<u8> {
    let mut msg = vec![0u8; 4];
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    msg.extend_from_slice(&handle.to_ne_bytes());
    msg.extend_from_slice(&parent.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg
}

fn basic(bytes: u64, packets: u32) -> Vec<u8> {
    let mut b = bytes.to_ne_bytes().to_vec();
    b.extend_from_slice(&packets.to_ne_bytes());
    b.extend_from_slice(&[0; 4]); // struct padding, as the kernel sends it
    b
}

fn queue(fields: [u32; 5]) -> Vec<u8> {
    fields.iter().flat_map(|f| f.to_ne_bytes()).collect()
}

fn qdisc_payload(attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = tcmsg(2, 0x0001_0000, TC_H_ROOT);
    for attr in attrs {
        payload.extend_from_slice(attr);
    }
    payload
}

const DONE: u16 = 3;
const ERROR: u16 = 2;
const NEWQDISC: u16 = 36;

#[test]
fn requests_a_dump_of_every_qdisc() {
    let req = dump_request(7);
    assert_eq!(req.len(), 36);
    assert_eq!(u32::from_ne_bytes(req[0..4].try_into().unwrap()), 36);
    assert_eq!(u16::from_ne_bytes(req[4..6].try_into().unwrap()), 38);
    assert_eq!(u16::from_ne_bytes(req[6..8].try_into().unwrap()), 0x301);
    assert_eq!(u32::from_ne_bytes(req[8..12].try_into().unwrap()), 7);
    assert!(req[12..].iter().all(|&b| b == 0));
}

#[test]
fn falls_back_to_legacy_tc_stats() {
    let mut legacy = Vec::new();
    legacy.extend_from_slice(&5000u64.to_ne_bytes());
    for field in [50u32, 3, 4, 999, 998, 2, 1500] {
        legacy.extend_from_slice(&field.to_ne_bytes());
    }
    legacy.extend_from_slice(&[0; 4]);
    let q = parse_qdisc(&qdisc_payload(&[nla(1, b"tbf\0"), nla(3, &legacy)])).unwrap();
    assert_eq!(
        q.stats,
        QdiscStats {
            bytes: 5000,
            packets: 50,
            drops: 3,
            requeues: 0,
            overlimits: 4,
            qlen: 2,
            backlog: 1500,
        }
    );
    // TCA_STATS2 wins whatever the order.
    let stats2 = nla(
        0x8000 | 7,
        &[nla(1, &basic(1, 2)), nla(3, &queue([0; 5]))].concat(),
    );
    for attrs in [
        vec![nla(1, b"tbf\0"), nla(3, &legacy), stats2.clone()],
        vec![nla(1, b"tbf\0"), stats2.clone(), nla(3, &legacy)],
    ] {
        let q = parse_qdisc(&qdisc_payload(&attrs)).unwrap();
        assert_eq!((q.stats.bytes, q.stats.packets), (1, 2));
    }
    let err = parse_qdisc(&qdisc_payload(&[nla(1, b"tbf\0"), nla(3, &legacy[..30])]));
    assert_eq!(
        err.unwrap_err(),
        "TCA_STATS: 30 bytes, want 36 (struct tc_stats)"
    );
}

#[test]
#[cfg(target_endian = "little")]
fn captured_message_without_stats2_decodes_from_tc_stats() {
    // Rebuild the captured tbf message without its TCA_STATS2: the legacy struct the kernel
    // sends next to it gives the same values, requeues aside.
    let capture = capture("netns-dump.hex");
    let full = parse_datagrams(1, &capture.datagrams).unwrap();
    let datagram = &capture.datagrams[0];
    let mut rest = &datagram[..];
    let mut rebuilt = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
        let payload = &rest[16..len];
        let mut attrs = &payload[20..];
        let mut kept = payload[..20].to_vec();
        while !attrs.is_empty() {
            let alen = u16::from_ne_bytes(attrs[0..2].try_into().unwrap()) as usize;
            let atype = u16::from_ne_bytes(attrs[2..4].try_into().unwrap()) & 0x3fff;
            let step = (alen + 3) & !3;
            if atype != 7 {
                kept.extend_from_slice(&attrs[..step.min(attrs.len())]);
            }
            attrs = &attrs[step.min(attrs.len())..];
        }
        rebuilt.extend(nlmsg(kind, 2, 1, &kept));
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    let legacy = parse_datagrams(1, &[rebuilt, capture.datagrams[1].clone()]).unwrap();
    assert_eq!(legacy.qdiscs.len(), full.qdiscs.len());
    for (l, f) in legacy.qdiscs.iter().zip(&full.qdiscs) {
        let mut want = f.stats;
        want.requeues = 0;
        assert_eq!(l.stats, want, "{}", f.kind);
    }
}

#[test]
fn sixty_four_bit_packets_and_hardware_stats() {
    let big = 5_000_000_000u64;
    // BASIC (truncated u32 packets), alignment PAD, then PKT64.
    let stats2 = [
        nla(1, &basic(7_000_000_000_000, (big & 0xFFFF_FFFF) as u32)),
        nla(6, &[]),
        nla(8, &big.to_ne_bytes()),
        nla(3, &queue([1, 2, 3, 4, 5])),
    ]
    .concat();
    let q = parse_qdisc(&qdisc_payload(&[nla(1, b"fq\0"), nla(7, &stats2)])).unwrap();
    assert_eq!(
        q.stats,
        QdiscStats {
            bytes: 7_000_000_000_000,
            packets: big,
            drops: 3,
            requeues: 4,
            overlimits: 5,
            qlen: 1,
            backlog: 2,
        }
    );
    // A PKT64 after the queue block belongs to no basic block.
    let stats2 = [
        nla(1, &basic(10, 1)),
        nla(3, &queue([0; 5])),
        nla(8, &big.to_ne_bytes()),
    ]
    .concat();
    let q = parse_qdisc(&qdisc_payload(&[nla(1, b"fq\0"), nla(7, &stats2)])).unwrap();
    assert_eq!(q.stats.packets, 1);
    // Software counters win over hardware ones; hardware ones are used alone.
    let sw_hw = [
        nla(1, &basic(10, 1)),
        nla(7, &basic(20, 2)),
        nla(8, &big.to_ne_bytes()),
    ]
    .concat();
    let q = parse_qdisc(&qdisc_payload(&[nla(1, b"mq\0"), nla(7, &sw_hw)])).unwrap();
    assert_eq!((q.stats.bytes, q.stats.packets), (10, 1));
    let hw = [nla(7, &basic(20, 2)), nla(8, &big.to_ne_bytes())].concat();
    let q = parse_qdisc(&qdisc_payload(&[nla(1, b"mq\0"), nla(7, &hw)])).unwrap();
    assert_eq!((q.stats.bytes, q.stats.packets), (20, big));
}

#[test]
fn malformed_qdisc_messages_name_the_problem() {
    let ok_stats = nla(7, &[nla(1, &basic(1, 1)), nla(3, &queue([0; 5]))].concat());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0; 12], "tcmsg of 12 bytes, want 20"),
        (
            qdisc_payload(std::slice::from_ref(&ok_stats)),
            "no TCA_KIND attribute",
        ),
        (
            qdisc_payload(&[nla(1, b"\0"), ok_stats.clone()]),
            "no TCA_KIND attribute",
        ),
        (
            qdisc_payload(&[nla(1, b"\xff\xfe\0")]),
            "TCA_KIND is not UTF-8",
        ),
        (
            qdisc_payload(&[nla(1, b"htb\0")]),
            "htb: neither TCA_STATS2 nor TCA_STATS",
        ),
        (
            qdisc_payload(&[nla(1, b"htb\0"), nla(7, &nla(1, &[0; 8]))]),
            "TCA_STATS2: basic statistics of 8 bytes, want 12",
        ),
        (
            qdisc_payload(&[nla(1, b"htb\0"), nla(7, &nla(3, &[0; 16]))]),
            "TCA_STATS2: queue statistics of 16 bytes, want 20",
        ),
        (
            qdisc_payload(&[nla(1, b"htb\0"), nla(7, &nla(8, &[0; 4]))]),
            "TCA_STATS2: 64-bit packet count of 4 bytes, want 8",
        ),
        (
            [tcmsg(1, 0, TC_H_ROOT), vec![8, 0, 1]].concat(),
            "qdisc: truncated attribute header (3 bytes left)",
        ),
        (
            [tcmsg(1, 0, TC_H_ROOT), vec![200, 0, 1, 0, b'x', 0, 0, 0]].concat(),
            "qdisc: attribute 1 length 200 out of bounds (8 bytes left)",
        ),
        (
            [tcmsg(1, 0, TC_H_ROOT), vec![2, 0, 1, 0]].concat(),
            "qdisc: attribute 1 length 2 out of bounds (4 bytes left)",
        ),
        (
            qdisc_payload(&[nla(1, b"htb\0"), nla(7, &[9, 0, 1, 0, 0, 0])]),
            "TCA_STATS2: attribute 1 length 9 out of bounds (6 bytes left)",
        ),
    ];
    for (payload, want) in cases {
        assert_eq!(parse_qdisc(&payload).unwrap_err(), want);
    }
}

#[test]
fn dump_framing_and_kernel_errors() {
    let good = nlmsg(
        NEWQDISC,
        2,
        9,
        &qdisc_payload(&[
            nla(1, b"htb\0"),
            nla(7, &[nla(1, &basic(1, 1)), nla(3, &queue([0; 5]))].concat()),
        ]),
    );
    let done = nlmsg(DONE, 2, 9, &0i32.to_ne_bytes());
    let parse = |seq: u32, parts: &[Vec<u8>]| parse_datagrams(seq, parts);

    // Messages and DONE in one datagram or in several.
    assert_eq!(
        parse(9, &[[good.clone(), done.clone()].concat()])
            .unwrap()
            .qdiscs
            .len(),
        1
    );
    assert_eq!(
        parse(9, &[good.clone(), good.clone(), done.clone()])
            .unwrap()
            .qdiscs
            .len(),
        2
    );
    // An acknowledgement and a NOOP are ignored.
    let ack = nlmsg(
        ERROR,
        0,
        9,
        &[0i32.to_ne_bytes().to_vec(), vec![0; 16]].concat(),
    );
    let noop = nlmsg(1, 0, 9, &[]);
    assert_eq!(
        parse(9, &[ack, noop, good.clone(), done.clone()])
            .unwrap()
            .qdiscs
            .len(),
        1
    );

    let err = |seq: u32, parts: &[Vec<u8>]| parse(seq, parts).unwrap_err();
    assert_eq!(
        err(9, std::slice::from_ref(&good)),
        "reply ended after 1 messages without NLMSG_DONE"
    );
    assert_eq!(
        err(10, &[good.clone(), done.clone()]),
        "netlink message with sequence number 9, want 10"
    );
    let eperm = nlmsg(ERROR, 0, 9, &(-libc::EPERM).to_ne_bytes());
    assert!(err(9, &[eperm]).starts_with("kernel error: Operation not permitted"));
    let failed_done = nlmsg(DONE, 2, 9, &(-libc::EINTR).to_ne_bytes());
    assert!(err(9, &[good.clone(), failed_done]).starts_with("dump failed: Interrupted"));
    assert_eq!(
        err(9, &[nlmsg(ERROR, 0, 9, &[1, 2])]),
        "truncated NLMSG_ERROR"
    );
    assert_eq!(err(9, &[nlmsg(4, 0, 9, &[])]), "NLMSG_OVERRUN: data lost");
    assert_eq!(
        err(9, &[nlmsg(16, 2, 9, &[0; 16])]),
        "unexpected netlink message type 16"
    );
    assert_eq!(
        err(9, &[[done.clone(), good.clone()].concat()]),
        format!("{} bytes after NLMSG_DONE", good.len())
    );
    assert_eq!(
        err(9, &[good[..10].to_vec()]),
        "truncated netlink header (10 bytes left)"
    );
    assert_eq!(
        err(9, &[good[..40].to_vec()]),
        format!(
            "netlink message length {} out of bounds (40 bytes left)",
            good.len()
        )
    );
    let mut short = good.clone();
    short[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert_eq!(
        err(9, &[short]),
        "netlink message length 8 out of bounds (92 bytes left)"
    );

    // A message whose content is broken is skipped; the others are kept.
    let broken = nlmsg(NEWQDISC, 2, 9, &qdisc_payload(&[nla(1, b"htb\0")]));
    let dump = parse(9, &[broken, good.clone(), done.clone()]).unwrap();
    assert_eq!(dump.qdiscs.len(), 1);
    assert_eq!(
        dump.skipped,
        ["message 1: htb: neither TCA_STATS2 nor TCA_STATS"]
    );

    // The kernel flags a dump that raced with changes.
    let mut parser = DumpParser::new(9);
    parser
        .feed(&nlmsg(NEWQDISC, 2 | 0x10, 9, &good[16..]))
        .unwrap();
    assert!(parser.interrupted());
}

#[test]
#[cfg(target_endian = "little")]
fn skipped_messages_do_not_hide_the_others() {
    let mut capture = capture("netns-dump.hex");
    // Corrupt the first message's TCA_KIND length (offset 16 + 20) to exceed the message.
    capture.datagrams[0][36] = 0xF0;
    let dump = parse_datagrams(1, &capture.datagrams).unwrap();
    assert_eq!(dump.qdiscs.len(), 12);
    assert_eq!(dump.skipped.len(), 1, "{:?}", dump.skipped);
    assert!(
        dump.skipped[0].starts_with("message 1: qdisc: attribute 1 length 240 out of bounds"),
        "{:?}",
        dump.skipped
    );
    let text = collect_text(&mut fixture_probe(&QdiscConfig::default(), capture));
    assert!(text.contains("device=\"v0\",kind=\"tbf\""), "{text}");
}

#[test]
fn truncated_and_garbage_buffers_never_panic() {
    let capture = capture("netns-dump.hex");
    let whole: Vec<u8> = capture.datagrams.concat();
    // Every prefix: an error unless it ends on a message boundary, never a panic.
    for len in 0..whole.len() {
        let result = parse_datagrams(1, &[whole[..len].to_vec()]);
        assert!(result.is_err(), "prefix of {len} bytes decoded");
    }
    // Every byte of the capture set to 0x00, 0xff and flipped, alone.
    for i in 0..whole.len() {
        for value in [0x00, 0xff, whole[i] ^ 0x5a] {
            let mut bytes = whole.clone();
            bytes[i] = value;
            let _ = parse_datagrams(1, &[bytes.clone()]);
            let payload = bytes.get(16..).unwrap_or_default();
            let _ = parse_qdisc(payload);
        }
    }
    // Pseudo-random garbage of every length up to 300 bytes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in 0..300 {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(parse_datagrams(1, std::slice::from_ref(&garbage)).is_err());
        let _ = parse_qdisc(&garbage);
    }
}

// ---- the real kernel ----

fn tc_available() -> bool {
    std::process::Command::new("tc")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tc_show() -> Vec<TcQdisc> {
    let out = std::process::Command::new("tc")
        .args(["-s", "qdisc", "show"])
        .output()
        .expect("tc");
    assert!(out.status.success(), "{out:?}");
    parse_tc(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn kernel_dump_matches_tc_on_this_host() {
    let mut seq = 0;
    let mut buf = Vec::new();
    let dump = netlink::dump_qdiscs(&mut seq, &mut buf).expect("RTM_GETQDISC dump");
    assert!(dump.skipped.is_empty(), "{:?}", dump.skipped);
    // Every device has a qdisc; only noop ones (down devices) are not dumped.
    assert!(!dump.qdiscs.is_empty());
    assert!(dump
        .qdiscs
        .iter()
        .all(|q| netlink::ifname(q.ifindex).is_some()));
    if !tc_available() {
        eprintln!("tc (iproute2) not installed: comparison with tc skipped");
        return;
    }
    let tc = tc_show();
    for want in tc.iter().filter(|q| q.root) {
        let got = dump
            .qdiscs
            .iter()
            .find(|q| q.is_root() && netlink::ifname(q.ifindex).as_deref() == Some(&want.dev))
            .unwrap_or_else(|| panic!("{want:?} not in {dump:#?}"));
        assert_eq!(got.kind, want.kind);
        assert_eq!(tc_handle(got.handle), want.handle);
        // tc ran after the dump: its counters are the same or further on.
        assert!(got.stats.bytes <= want.bytes, "{got:?} {want:?}");
        assert!(got.stats.packets <= want.packets, "{got:?} {want:?}");
        assert!(u64::from(got.stats.drops) <= want.drops, "{got:?} {want:?}");
        if want.dev == "lo" {
            // Loopback's qdisc (noqueue) never counts anything.
            assert_eq!(
                (got.stats.bytes, got.stats.packets),
                (want.bytes, want.packets)
            );
        }
    }
    // The probe exports the same devices as tc shows with a queueing root.
    let config = QdiscConfig {
        enabled: true,
        device_excluded: Vec::new(),
        ..QdiscConfig::default()
    };
    let mut probe = QdiscProbe::start(&config, &real_proc_context()).unwrap();
    let text = collect_text(&mut probe);
    for want in tc.iter().filter(|q| q.root && q.kind != "noqueue") {
        assert!(
            text.contains(&format!(
                "huatuo_bamai_netdev_qdisc_bytes_total{{device=\"{}\",kind=\"{}\"}}",
                want.dev, want.kind
            )),
            "{want:?} missing in\n{text}"
        );
    }
}

/// Runs `f` on a thread of its own in a new, empty network namespace (needs CAP_SYS_ADMIN);
/// `None` when the namespace cannot be created.
fn in_scratch_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        // SAFETY: unshare(2) only changes this thread's network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!(
                "unshare(CLONE_NEWNET): {}: scratch namespace test skipped",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(f())
    })
    .join()
    .expect("scratch netns thread")
}

fn run(args: &[&str]) -> bool {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Sends `count` raw 1000-byte frames out of `dev` (they pass its qdisc).
fn send_frames(dev: &str, count: usize) {
    // SAFETY: plain socket calls on a descriptor owned here; buffers outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex =
            libc::if_nametoindex(std::ffi::CString::new(dev).unwrap().as_ptr()) as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let mut frame = vec![0u8; 1000];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        for _ in 0..count {
            // Drops by the qdisc come back as ENOBUFS: ignored.
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
        }
        libc::close(fd);
    }
}

#[test]
fn kernel_dump_matches_tc_with_drops_backlog_and_hierarchy() {
    if !tc_available() {
        eprintln!("tc (iproute2) not installed: test skipped");
        return;
    }
    let result = in_scratch_netns(|| {
        let setup: [&[&str]; 6] = [
            &[
                "ip", "link", "add", "name", "qv0", "type", "veth", "peer", "name", "qv1",
            ],
            &["ip", "link", "set", "qv0", "up"],
            &["ip", "link", "set", "qv1", "up"],
            &[
                "tc", "qdisc", "add", "dev", "qv0", "root", "handle", "1:", "tbf", "rate", "1kbit",
                "burst", "1600", "limit", "3000",
            ],
            &["tc", "qdisc", "add", "dev", "qv0", "ingress"],
            &["ip", "link", "set", "lo", "up"],
        ];
        for cmd in setup {
            if !run(cmd) {
                return Err(format!("{cmd:?} failed"));
            }
        }
        send_frames("qv0", 30);
        // Retry until tc reads the same before and after the dump (a queued frame may leave,
        // IPv6 may send a router solicitation).
        for _ in 0..5 {
            let before = tc_show();
            let mut seq = 0;
            let dump = netlink::dump_qdiscs(&mut seq, &mut Vec::new())?;
            if tc_show() == before {
                // Names resolve in this namespace only.
                let names: HashMap<i32, String> = dump
                    .qdiscs
                    .iter()
                    .filter_map(|q| Some((q.ifindex, netlink::ifname(q.ifindex)?)))
                    .collect();
                return Ok((dump, names, before));
            }
        }
        Err("qdisc counters kept changing".to_string())
    });
    let Some(result) = result else { return };
    let (dump, names, tc) = match result {
        Ok(ok) => ok,
        Err(e) if e.contains("failed") => {
            eprintln!("scratch namespace setup: {e}: test skipped");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_matches_tc(&dump, &|i| names.get(&i).cloned(), &tc);
    let tbf = dump.qdiscs.iter().find(|q| q.kind == "tbf").unwrap();
    assert!(tbf.stats.drops > 0 && tbf.stats.overlimits > 0, "{tbf:?}");
    assert!(tbf.stats.qlen > 0 && tbf.stats.backlog > 0, "{tbf:?}");
}

#[test]
fn collect_renders_nothing_but_the_families_when_empty() {
    let mut probe = QdiscProbe::with_source(
        &QdiscConfig::default(),
        Box::new(FixtureSource {
            result: Ok(vec![nlmsg(DONE, 2, 1, &0i32.to_ne_bytes())]),
            links: HashMap::new(),
        }),
    )
    .unwrap();
    let mut set = MetricSet::default();
    probe.collect(&mut set).unwrap();
    assert!(crate::probes::testutil::samples(&render(set)).is_empty());
}
