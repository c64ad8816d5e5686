use super::*;
use crate::config::Section;

const FORMAT: &str = r#"print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 0x10000, "SUBSYS" })
"#;

const ETH_P_IP: u16 = 0x0800;

/// An IPv4/TCP SYN 127.0.0.2:40000 > 127.0.0.1:9 with Ethernet header, as `raw` holds it.
fn syn_frame() -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 40];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&60u16.to_be_bytes());
    ip[4..6].copy_from_slice(&51234u16.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[10..12].copy_from_slice(&0x7771u16.to_be_bytes());
    ip[12..16].copy_from_slice(&[127, 0, 0, 2]);
    ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&9u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&2_881_920_042u32.to_be_bytes());
    tcp[12] = 10 << 4;
    tcp[13] = 0x02;
    tcp[14..16].copy_from_slice(&65495u16.to_be_bytes());
    tcp[16..18].copy_from_slice(&0xfe30u16.to_be_bytes());
    f
}

fn record() -> Vec<u8> {
    let mut b = vec![0u8; DropRecord::SIZE];
    b[0..8].copy_from_slice(&5u64.to_le_bytes());
    b[8..16].copy_from_slice(&0xffff_ffff_8100_0010u64.to_le_bytes());
    b[16..24].copy_from_slice(&77u64.to_le_bytes());
    b[24..32].copy_from_slice(&0xffff_8881_0a3b_2e00u64.to_le_bytes());
    b[32..40].copy_from_slice(&0xffff_8881_04a6_c000u64.to_le_bytes());
    b[40..48].copy_from_slice(&4096u64.to_le_bytes());
    b[48..52].copy_from_slice(&3u32.to_le_bytes());
    b[52..56].copy_from_slice(&100u32.to_le_bytes());
    b[56..60].copy_from_slice(&101u32.to_le_bytes());
    b[60..64].copy_from_slice(&4026531840u32.to_le_bytes());
    b[64..68].copy_from_slice(&1u32.to_le_bytes());
    // IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP.
    b[68..72].copy_from_slice(&0x1_0049u32.to_le_bytes());
    b[72..76].copy_from_slice(&3u32.to_le_bytes());
    b[76..80].copy_from_slice(&60u32.to_le_bytes());
    b[80..82].copy_from_slice(&ETH_P_IP.to_le_bytes());
    b[82] = 6;
    b[83] = 2;
    b[84..86].copy_from_slice(&40000u16.to_le_bytes());
    b[86..88].copy_from_slice(&9u16.to_le_bytes());
    b[88..92].copy_from_slice(&[127, 0, 0, 2]);
    b[104..108].copy_from_slice(&[127, 0, 0, 1]);
    b[120..126].copy_from_slice(b"python");
    b[136..138].copy_from_slice(b"lo");
    // __LINK_STATE_START | __LINK_STATE_PRESENT.
    b[152..156].copy_from_slice(&3u32.to_le_bytes());
    let frame = syn_frame();
    b[160..162].copy_from_slice(&120u16.to_le_bytes());
    b[162] = 1;
    b[168..168 + frame.len()].copy_from_slice(&frame);
    b
}

/// `record()` with kernel stack frames after the fixed part.
fn record_with_stack(frames: &[u64]) -> Vec<u8> {
    let mut b = record();
    b[156..160].copy_from_slice(&((frames.len() * 8) as u32).to_le_bytes());
    for frame in frames {
        b.extend_from_slice(&frame.to_le_bytes());
    }
    b
}

#[test]
fn reason_names_come_from_the_format_file() {
    let names = parse_reason_names(FORMAT);
    assert_eq!(names.get(&2).map(String::as_str), Some("NOT_SPECIFIED"));
    assert_eq!(names.get(&3).map(String::as_str), Some("NO_SOCKET"));
    assert_eq!(names.get(&12).map(String::as_str), Some("NETFILTER_DROP"));
    assert_eq!(names.get(&0x10000).map(String::as_str), Some("SUBSYS"));
    assert_eq!(names.len(), 4);
    assert!(parse_reason_names("no symbols here").is_empty());
}

#[test]
fn records_decode_at_the_c_offsets() {
    let r = DropRecord::decode(&record()).expect("decode");
    assert_eq!(r.boot_ns, 5);
    assert_eq!(r.cgroup_id, 77);
    assert_eq!(r.skb_addr, 0xffff_8881_0a3b_2e00);
    assert_eq!(r.memcg_css, 0xffff_8881_04a6_c000);
    assert_eq!(r.netns_cookie, 4096);
    assert_eq!(r.reason, 3);
    assert_eq!((r.pid, r.tid), (100, 101));
    assert_eq!(r.netns, 4026531840);
    assert_eq!(
        (r.ifindex, r.dev_flags, r.queue_mapping, r.len),
        (1, 0x1_0049, 3, 60)
    );
    assert_eq!(r.l3proto, ETH_P_IP);
    assert_eq!((r.l4proto, r.sk_state), (6, 2));
    assert_eq!((r.sport, r.dport), (40000, 9));
    assert_eq!(&r.daddr[..4], &[127, 0, 0, 1]);
    assert_eq!(r.comm, "python");
    assert_eq!(r.device, "lo");
    assert_eq!(r.dev_state, 3);
    assert_eq!((r.raw.len(), r.raw_is_mac), (120, true));
    assert_eq!(&r.raw[..74], syn_frame().as_slice());
    assert!(DropRecord::decode(&record()[..DropRecord::SIZE - 1]).is_none());
    assert!(r.stack.is_empty());
}

#[test]
fn stack_frames_follow_the_fixed_part() {
    let frames = [
        0xffff_ffff_8100_0024u64,
        0xffff_ffff_8100_0090,
        0xffff_ffff_8100_0011,
    ];
    let r = DropRecord::decode(&record_with_stack(&frames)).expect("decode");
    assert_eq!(r.stack, frames);
    // A record cut short keeps the whole frames it has; stack_bytes never reads past the end.
    let bytes = record_with_stack(&frames);
    let r = DropRecord::decode(&bytes[..bytes.len() - 3]).expect("decode");
    assert_eq!(r.stack, frames[..2]);
    // Zero frames (unused slots) are dropped.
    let r = DropRecord::decode(&record_with_stack(&[frames[0], 0])).expect("decode");
    assert_eq!(r.stack, frames[..1]);
}

#[test]
fn stacks_are_resolved_frames_without_the_tracing_glue() {
    let kallsyms = "ffffffff81000000 T _stext\n\
                    ffffffff81000010 t bpf_trace_run4\n\
                    ffffffff81000020 t __bpf_trace_kfree_skb\n\
                    ffffffff81000030 T sk_skb_reason_drop\n\
                    ffffffff81000050 T __udp4_lib_rcv\n\
                    ffffffff81000080 T ip_local_deliver_finish\n\
                    ffffffffc0000000 t bpf_prog_0123456789abcdef_on_kfree_skb\t[bpf]\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kallsyms");
    std::fs::write(&path, kallsyms).unwrap();
    let frames = [
        0xffff_ffff_c000_0042u64,
        0xffff_ffff_8100_0014,
        0xffff_ffff_8100_0021,
        0xffff_ffff_8100_0038,
        0xffff_ffff_8100_0066,
        0xffff_ffff_8100_0090,
    ];
    let mut symbolizer = Symbolizer::default();
    symbolizer.resolve(&path, &frames);
    assert_eq!(
        symbolizer.stack(&frames),
        "sk_skb_reason_drop+0x8\n__udp4_lib_rcv+0x16\nip_local_deliver_finish+0x10"
    );
    // Tracing frames further down are kept: only the leading ones are the probe's own.
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        format_stack(&strings(&[
            "bpf_trace_run4+0x1",
            "a+0x1",
            "bpf_trace_run4+0x2"
        ])),
        "a+0x1\nbpf_trace_run4+0x2"
    );
    assert_eq!(
        format_stack(&strings(&["bpf_trace_run4+0x1"])),
        "bpf_trace_run4+0x1"
    );
    assert_eq!(format_stack(&[]), "");
    assert_eq!(symbolizer.stack(&[0x5]), "0x5");
}

#[test]
fn the_nearest_symbol_of_several_at_one_address_is_the_first_listed() {
    let kallsyms = "ffffffff81000010 t first_alias\n\
                    ffffffff81000010 t second_alias\n\
                    ffffffff81000000 T _stext\n";
    let found = nearest_symbols(kallsyms, &[0xffff_ffff_8100_0018, 0xffff_ffff_8100_0008]);
    assert_eq!(
        found[0],
        Some((0xffff_ffff_8100_0010, "first_alias".to_string()))
    );
    assert_eq!(
        found[1],
        Some((0xffff_ffff_8100_0000, "_stext".to_string()))
    );
}

#[test]
fn filters_match_protocol_port_and_reason() {
    let mut raw = record();
    raw[82] = 17;
    let r = DropRecord::decode(&raw).unwrap();
    let all = DropFilter::new(&DropwatchConfig {
        protocols: Vec::new(),
        ..Default::default()
    });
    assert!(all.accepts(&r, "NO_SOCKET"));
    // The default is upstream's `tcp`.
    assert!(!DropFilter::new(&DropwatchConfig::default()).accepts(&r, "NO_SOCKET"));
    let config = |protocols: &[&str], ports: &[u16], reasons: &[&str]| DropwatchConfig {
        protocols: protocols.iter().map(|s| s.to_string()).collect(),
        ports: ports.to_vec(),
        reasons: reasons.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    assert!(DropFilter::new(&config(&["UDP"], &[], &[])).accepts(&r, "NO_SOCKET"));
    assert!(!DropFilter::new(&config(&["tcp"], &[], &[])).accepts(&r, "NO_SOCKET"));
    assert!(DropFilter::new(&config(&[], &[9], &[])).accepts(&r, "NO_SOCKET"));
    assert!(DropFilter::new(&config(&[], &[40000], &[])).accepts(&r, "NO_SOCKET"));
    assert!(!DropFilter::new(&config(&[], &[80], &[])).accepts(&r, "NO_SOCKET"));
    let reasons = DropFilter::new(&config(&[], &[], &["skb_drop_reason_no_socket"]));
    assert!(reasons.accepts(&r, "NO_SOCKET"));
    assert!(!reasons.accepts(&r, "NETFILTER_DROP"));
    // Ignored by default: a closing socket's queue purge.
    assert!(!all.accepts(&r, "QUEUE_PURGE"));
    assert!(!all.accepts(&r, "SKB_DROP_REASON_QUEUE_PURGE"));
}

#[test]
fn unknown_protocols_are_rejected_by_validation() {
    assert!(DropwatchConfig::default().validate().is_ok());
    let bad = DropwatchConfig {
        protocols: vec!["quic".to_string()],
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().reason.contains("quic"));
}

#[test]
fn locations_resolve_to_the_nearest_text_symbol() {
    let kallsyms = "ffffffff81000000 T _stext\n\
                    ffffffff81000010 t udp_rcv_helper\n\
                    ffffffff81000040 D some_data\n\
                    ffffffff81000080 T kfree_skb_reason\n";
    let found = nearest_symbols(kallsyms, &[0xffff_ffff_8100_0024, 0xffff_ffff_8100_0090, 5]);
    assert_eq!(
        found[0],
        Some((0xffff_ffff_8100_0010, "udp_rcv_helper".to_string()))
    );
    assert_eq!(
        found[1],
        Some((0xffff_ffff_8100_0080, "kfree_skb_reason".to_string()))
    );
    assert_eq!(found[2], None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kallsyms");
    std::fs::write(&path, kallsyms).unwrap();
    let mut symbolizer = Symbolizer::default();
    symbolizer.resolve(&path, &[0xffff_ffff_8100_0024, 3]);
    assert_eq!(symbolizer.get(0xffff_ffff_8100_0024), "udp_rcv_helper+0x14");
    assert_eq!(symbolizer.get(3), "0x3");
}

#[test]
fn the_packet_decodes_into_upstreams_layers() {
    let packet = layers::parse(&syn_frame(), true, ETH_P_IP, 2).expect("decodes");
    assert_eq!(
        serde_json::to_value(&packet).unwrap(),
        serde_json::json!({
            "label": "IPv4/TCP",
            "ether": {"saddr": "02:00:00:00:00:02", "daddr": "02:00:00:00:00:01", "type": "IPv4"},
            "ipv4": {
                "version": 4, "ihl": 5, "tos": 0, "len": 60, "id": 51234, "flags": "DF",
                "ttl": 64, "protocol": "TCP", "checksum": 0x7771,
                "saddr": "127.0.0.2", "daddr": "127.0.0.1"
            },
            "tcp": {
                "sport": 40000, "dport": 9, "seq": 2_881_920_042u32, "ack_seq": 0,
                "data_offset": 10, "flags": "SYN", "window": 65495, "checksum": 0xfe30,
                "sk_state": "SYN_SENT"
            }
        })
    );
    // From the IP header (a packet being sent): no ether layer.
    let from_ip = layers::parse(&syn_frame()[14..], false, ETH_P_IP, 0).unwrap();
    assert!(from_ip.ether.is_none());
    assert_eq!(from_ip.tcp.unwrap().sk_state, "unknown");
    // Cut inside the TCP header: the layers before it are kept.
    let cut = layers::parse(&syn_frame()[..40], true, ETH_P_IP, 0).unwrap();
    assert_eq!((cut.label.as_str(), cut.tcp.is_none()), ("IPv4", true));
    // Nothing decodable: no layers at all, as upstream.
    assert!(layers::parse(&[], false, ETH_P_IP, 0).is_none());
    assert!(layers::parse(&[0u8; 40], false, ETH_P_IP, 0).is_none());
}

#[test]
fn udp_icmp_ipv6_and_arp_layers_use_gopackets_names() {
    // IPv4 + ICMP port unreachable.
    let mut icmp = vec![0u8; 28];
    icmp[0] = 0x45;
    icmp[6] = 0x20; // MF
    icmp[9] = 1;
    let fragment = layers::parse(&icmp, false, ETH_P_IP, 0).unwrap();
    assert_eq!(fragment.label, "IPv4", "a fragment has no L4 layer");
    assert_eq!(fragment.ipv4.as_ref().unwrap().flags, "MF");
    icmp[6] = 0;
    icmp[20] = 3;
    icmp[21] = 3;
    let unreachable = layers::parse(&icmp, false, ETH_P_IP, 0).unwrap();
    assert_eq!(unreachable.label, "IPv4/ICMP");
    assert_eq!(unreachable.ipv4.as_ref().unwrap().protocol, "ICMPv4");
    assert_eq!(
        unreachable.icmp.unwrap().kind,
        "DestinationUnreachable(Port)"
    );
    // IPv6 + UDP.
    let mut v6 = vec![0u8; 48];
    v6[0] = 0x60;
    v6[1] = 0x12;
    v6[3] = 0x34;
    v6[6] = 17;
    v6[39] = 1;
    v6[40..42].copy_from_slice(&53u16.to_be_bytes());
    let udp = layers::parse(&v6, false, 0x86dd, 0).unwrap();
    assert_eq!(udp.label, "IPv6/UDP");
    let ipv6 = udp.ipv6.unwrap();
    assert_eq!((ipv6.traffic_class, ipv6.flow_label), (1, 0x2_0034));
    assert_eq!(ipv6.daddr.to_string(), "::1");
    assert_eq!(udp.udp.unwrap().sport, 53);
    // ARP request.
    let mut arp = vec![0u8; 28];
    arp[0..2].copy_from_slice(&1u16.to_be_bytes());
    arp[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&1u16.to_be_bytes());
    arp[14..18].copy_from_slice(&[10, 0, 0, 1]);
    arp[24..28].copy_from_slice(&[10, 0, 0, 2]);
    let request = layers::parse(&arp, false, 0x0806, 0).unwrap();
    assert_eq!(request.label, "ARP");
    let arp = request.arp.unwrap();
    assert_eq!(
        (
            arp.addr_type.as_str(),
            arp.operation.as_str(),
            arp.sender_ip.as_str()
        ),
        ("Ethernet", "request", "10.0.0.1")
    );
    assert_eq!(arp.target_ip, "10.0.0.2");
}

#[test]
fn link_status_follows_upstreams_netif_flags() {
    // Up, running, carrier.
    assert_eq!(
        link_status(0x1_0049, 0b001),
        ["linkstatus_adminup", "linkstatus_carrierup"]
    );
    // Up but no carrier (__LINK_STATE_NOCARRIER), and down.
    assert_eq!(
        link_status(0x1003, 0b101),
        ["linkstatus_adminup", "linkstatus_carrierdown"]
    );
    assert_eq!(
        link_status(0x1002, 0),
        ["linkstatus_admindown", "linkstatus_carrierdown"]
    );
    assert_eq!(link_status(0, 0), ["unknown"]);
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture() {
    let record = DropRecord::decode(&record()).unwrap();
    let symbolizer = Symbolizer::default();
    let data = drop_data(&record, "NO_SOCKET".into(), &symbolizer, "");
    assert_eq!(data.drop_location, "0xffffffff81000010");
    assert_eq!(data.memory_cgroup_css_addr, "0xffff888104a6c000");
    assert_eq!(data.packet_eth_proto, "0x800");
    assert_eq!(
        data.netdev_linkstatus,
        ["linkstatus_adminup", "linkstatus_carrierup"]
    );
    let document = crate::events::EventDocument::new(
        "h",
        "r",
        NAME,
        None,
        record.cgroup_id,
        serde_json::to_value(&data).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    assert!(ours["tracer_data"].get("container_id").is_none());
    // The flat columns of upstream's event dashboard repeat `layers`.
    let data_json = &ours["tracer_data"];
    let layers = &data_json["layers"];
    for (flat, nested) in [
        ("saddr", &layers["ipv4"]["saddr"]),
        ("daddr", &layers["ipv4"]["daddr"]),
        ("sport", &layers["tcp"]["sport"]),
        ("dport", &layers["tcp"]["dport"]),
        ("state", &layers["tcp"]["sk_state"]),
        ("queue_mapping", &data_json["netdev_queue_mapping"]),
    ] {
        assert!(!nested.is_null(), "{flat}: {data_json:#}");
        assert_eq!(&data_json[flat], nested, "{flat}");
    }
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/dropwatch.json"
    ))
    .unwrap();
    let optional = crate::events::document::upstream_omitempty(NAME);
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &optional);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
    // Without a device: upstream's `-` and `unknown`.
    let mut raw = record_bytes_without_device();
    raw[162] = 0;
    let bare = DropRecord::decode(&raw).unwrap();
    let data = drop_data(&bare, "NO_SOCKET".into(), &symbolizer, "");
    assert_eq!(
        (data.netdev_name.as_str(), data.netdev_linkstatus),
        ("-", vec!["unknown"])
    );
}

fn record_bytes_without_device() -> Vec<u8> {
    let mut b = record();
    b[136..152].fill(0);
    b[64..72].fill(0);
    b
}
