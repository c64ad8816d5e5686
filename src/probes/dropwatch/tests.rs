use super::*;
use crate::config::Section;

const FORMAT: &str = r#"print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 0x10000, "SUBSYS" })
"#;

fn record() -> Vec<u8> {
    let mut b = vec![0u8; DropRecord::SIZE];
    b[0..8].copy_from_slice(&5u64.to_le_bytes());
    b[8..16].copy_from_slice(&0xffff_ffff_8100_0010u64.to_le_bytes());
    b[16..24].copy_from_slice(&77u64.to_le_bytes());
    b[24..28].copy_from_slice(&3u32.to_le_bytes());
    b[28..32].copy_from_slice(&100u32.to_le_bytes());
    b[32..36].copy_from_slice(&101u32.to_le_bytes());
    b[36..40].copy_from_slice(&4026531840u32.to_le_bytes());
    b[40..44].copy_from_slice(&1u32.to_le_bytes());
    b[44..46].copy_from_slice(&ETH_P_IP.to_le_bytes());
    b[46] = 17;
    b[48..50].copy_from_slice(&40000u16.to_le_bytes());
    b[50..52].copy_from_slice(&9u16.to_le_bytes());
    b[56..60].copy_from_slice(&[127, 0, 0, 2]);
    b[72..76].copy_from_slice(&[127, 0, 0, 1]);
    b[88..94].copy_from_slice(b"python");
    b[104..106].copy_from_slice(b"lo");
    b
}

/// `record()` with kernel stack frames after the fixed part.
fn record_with_stack(frames: &[u64]) -> Vec<u8> {
    let mut b = record();
    b[120..124].copy_from_slice(&((frames.len() * 8) as u32).to_le_bytes());
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
    assert_eq!(r.reason, 3);
    assert_eq!((r.pid, r.tid), (100, 101));
    assert_eq!(r.netns, 4026531840);
    assert_eq!(r.l3proto, ETH_P_IP);
    assert_eq!(r.l4proto, 17);
    assert_eq!((r.sport, r.dport), (40000, 9));
    assert_eq!(r.address(&r.daddr), Some("127.0.0.1".parse().unwrap()));
    assert_eq!(r.comm, "python");
    assert_eq!(r.device, "lo");
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
    let r = DropRecord::decode(&record()).unwrap();
    let all = DropFilter::new(&DropwatchConfig::default());
    assert!(all.accepts(&r, "NO_SOCKET"));
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
