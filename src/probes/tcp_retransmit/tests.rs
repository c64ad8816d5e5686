use super::*;
use crate::config::Section;

/// A record as tcp_retransmit.bpf.c lays it out.
fn raw_record(kind: u8, family: u16, state: u8, ca_state: u8, reord_seen: u32) -> Vec<u8> {
    let mut b = vec![0u8; RetransmitRecord::SIZE];
    b[0..8].copy_from_slice(&123_456u64.to_le_bytes());
    b[8..16].copy_from_slice(&77u64.to_le_bytes());
    b[16..24].copy_from_slice(&0xffff_8881_0000_1000u64.to_le_bytes());
    b[24..28].copy_from_slice(&4242u32.to_le_bytes());
    b[28..32].copy_from_slice(&4026531840u32.to_le_bytes());
    b[32..36].copy_from_slice(&1000u32.to_le_bytes());
    b[36..40].copy_from_slice(&2448u32.to_le_bytes());
    b[40..44].copy_from_slice(&9u32.to_le_bytes());
    b[44..48].copy_from_slice(&reord_seen.to_le_bytes());
    b[48..52].copy_from_slice(&0u32.to_le_bytes());
    b[52..56].copy_from_slice(&(-11i32).to_le_bytes());
    b[56..58].copy_from_slice(&family.to_le_bytes());
    b[58..60].copy_from_slice(&40000u16.to_le_bytes());
    b[60..62].copy_from_slice(&8080u16.to_le_bytes());
    b[62..64].copy_from_slice(&0x18u16.to_le_bytes());
    b[64] = state;
    b[65] = ca_state;
    b[66] = 1;
    b[67] = 2;
    b[68] = kind;
    b[72..76].copy_from_slice(&[10, 0, 0, 1]);
    b[88..92].copy_from_slice(&[10, 0, 0, 2]);
    b[104..111].copy_from_slice(b"python3");
    b[120..128].copy_from_slice(&0xffff_8881_04a6_c000u64.to_le_bytes());
    b[128..136].copy_from_slice(&4096u64.to_le_bytes());
    b
}

#[test]
fn decodes_every_field_at_its_offset() {
    let record = RetransmitRecord::decode(&raw_record(0, 2, 1, 4, 0)).expect("decodes");
    let data = record.data();
    assert_eq!(record.boot_ns, 123_456);
    assert_eq!(record.cgroup_id, 77);
    assert_eq!(data.pid, 4242);
    assert_eq!(data.net_namespace_inum, 4026531840);
    assert_eq!(
        (data.tcp_seq, data.tcp_end_seq, data.tcp_ack_seq),
        (1000, 2448, 9)
    );
    assert_eq!(data.dsack_dups, 0);
    assert_eq!(
        data.memory_cgroup_css_addr.as_deref(),
        Some("0xffff888104a6c000")
    );
    assert_eq!(data.net_namespace_cookie, Some(4096));
    assert_eq!(record.drop_boot_ns, 0);
    assert_eq!(data.retransmit_error, -11);
    assert_eq!(
        (data.tcp_saddr.as_str(), data.tcp_sport),
        ("10.0.0.1", 40000)
    );
    assert_eq!(
        (data.tcp_daddr.as_str(), data.tcp_dport),
        ("10.0.0.2", 8080)
    );
    assert_eq!(data.tcp_flags, "ACK|PSH", "upstream's order");
    assert_eq!(data.tcp_state, "ESTABLISHED");
    assert_eq!((data.icsk_pending, data.icsk_retransmits), (1, 2));
    assert_eq!(data.skb_addr, "0xffff888100001000");
    assert_eq!(data.comm, "python3");
    assert_eq!(data.event_type, Kind::Skb);
    assert_eq!((data.ca_state, data.ca_state_name), (4, "loss"));
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture() {
    let record = RetransmitRecord::decode(&raw_record(1, 2, 3, 0, 0)).expect("decodes");
    let document = crate::events::EventDocument::new(
        "h",
        "r",
        NAME,
        None,
        record.cgroup_id,
        serde_json::to_value(record.data()).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    assert_eq!(ours["tracer_data"]["event_type"], "tcp_retransmit_synack");
    assert_eq!(ours["tracer_data"]["source"], "events");
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/tcp_retransmit.json"
    ))
    .unwrap();
    let optional = crate::events::document::upstream_omitempty(NAME);
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &optional);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
}

#[test]
fn ipv6_addresses_are_written_as_such() {
    let mut raw = raw_record(0, 10, 1, 4, 0);
    raw[72..88].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    let data = RetransmitRecord::decode(&raw).unwrap().data();
    assert_eq!(data.tcp_saddr, "::1");
}

#[test]
fn reason_and_phase_follow_congestion_state_and_tcp_state() {
    let case = |kind, state, ca, reord| {
        let r = RetransmitRecord::decode(&raw_record(kind, 2, state, ca, reord)).unwrap();
        (r.reason(), r.phase())
    };
    assert_eq!(case(0, 1, 4, 0), ("RTO", "data"));
    assert_eq!(case(0, 1, 3, 0), ("fast_retransmit", "data"));
    assert_eq!(case(0, 1, 3, 5), ("reorder_prone_fast", "data"));
    assert_eq!(case(0, 1, 0, 0), ("unknown", "data"));
    assert_eq!(case(0, 2, 4, 0), ("RTO", "connect"));
    assert_eq!(case(1, 12, 0, 0), ("RTO", "connect"));
    assert_eq!(case(0, 4, 4, 0), ("RTO", "close"));
    // Open state outside data transfer: the RTO's, as upstream's classifier.
    assert_eq!(case(0, 2, 0, 0), ("RTO", "connect"));
    assert_eq!(case(0, 8, 0, 0), ("RTO", "close"));
}

#[test]
fn d_sacks_make_a_fast_retransmit_reorder_prone_as_upstream() {
    let mut raw = raw_record(0, 2, 1, 3, 0);
    raw[48..52].copy_from_slice(&2u32.to_le_bytes());
    let record = RetransmitRecord::decode(&raw).unwrap();
    assert_eq!(record.reason(), "reorder_prone_fast");
}

#[test]
fn a_retransmit_while_the_loss_probe_timer_runs_is_a_tlp() {
    let tlp = |ca_state: u8, pending: u8| {
        let mut raw = raw_record(0, 2, 1, ca_state, 0);
        raw[66] = pending;
        RetransmitRecord::decode(&raw).unwrap().reason()
    };
    assert_eq!(tlp(0, 5), "TLP", "open state, ICSK_TIME_LOSS_PROBE");
    assert_eq!(tlp(1, 5), "TLP", "disorder");
    assert_eq!(
        tlp(0, 1),
        "unknown",
        "the RTO timer is armed, none is running"
    );
    assert_eq!(tlp(0, 0), "unknown");
    // Loss and recovery decide first: their retransmits are not probes.
    assert_eq!(tlp(4, 5), "RTO");
    assert_eq!(tlp(3, 5), "fast_retransmit");
}

#[test]
fn drop_location_says_whether_this_host_dropped_the_flow_just_before() {
    let at = |drop_boot_ns: u64, window_ns: u64| {
        let mut raw = raw_record(0, 2, 1, 4, 0);
        raw[0..8].copy_from_slice(&10_000_000_000u64.to_le_bytes());
        raw[136..144].copy_from_slice(&drop_boot_ns.to_le_bytes());
        RetransmitRecord::decode(&raw)
            .unwrap()
            .drop_location(window_ns)
    };
    let window = 2_000_000_000;
    assert_eq!(at(9_000_000_000, window), Some("host_software"));
    assert_eq!(
        at(8_000_000_000, window),
        Some("host_software"),
        "at the edge"
    );
    assert_eq!(at(7_999_999_999, window), Some("network_or_host_hardware"));
    assert_eq!(
        at(0, window),
        Some("network_or_host_hardware"),
        "never dropped"
    );
    assert_eq!(
        at(10_000_000_001, window),
        Some("network_or_host_hardware"),
        "a drop after the retransmit did not cause it"
    );
    assert_eq!(at(9_000_000_000, 0), None, "correlation off");
    let mut data = RetransmitRecord::decode(&raw_record(0, 2, 1, 4, 0))
        .unwrap()
        .data();
    data.drop_location = Some("host_software");
    let json = serde_json::to_value(&data).unwrap();
    assert_eq!(json["drop_location"], "host_software");
    assert!(json.get("container_id").is_none(), "omitted on the host");
}

#[test]
fn short_or_garbled_records_are_rejected() {
    let raw = raw_record(0, 2, 1, 4, 0);
    assert!(RetransmitRecord::decode(&raw[..RetransmitRecord::SIZE - 1]).is_none());
    assert!(
        RetransmitRecord::decode(&raw_record(7, 2, 1, 4, 0)).is_none(),
        "unknown kind"
    );
    let mut odd = raw_record(0, 99, 200, 9, 0);
    odd[104..120].fill(0xff);
    odd[120..136].fill(0);
    let data = RetransmitRecord::decode(&odd).unwrap().data();
    assert_eq!(
        (data.tcp_saddr.as_str(), data.tcp_state, data.ca_state_name),
        ("", "unknown", "unknown")
    );
}

#[test]
fn config_is_off_by_default_and_checks_its_interval() {
    let config = TcpRetransmitConfig::default();
    assert!(!config.enabled, "off by default, as upstream");
    assert!(config.validate().is_ok());
    let fast = TcpRetransmitConfig {
        interval_ms: 10,
        ..Default::default()
    };
    assert!(fast.validate().unwrap_err().reason.contains("interval_ms"));
}
