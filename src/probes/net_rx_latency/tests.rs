use super::*;
use crate::config::Section;

/// A record as net_rx_latency.bpf.c lays it out (struct rx_event).
fn raw_record(stage: u8, family: u16, clock: u8) -> Vec<u8> {
    let mut b = vec![0u8; RxRecord::SIZE];
    b[0..8].copy_from_slice(&123_456u64.to_le_bytes());
    b[8..16].copy_from_slice(&250_500_000u64.to_le_bytes());
    b[16..24].copy_from_slice(&77u64.to_le_bytes());
    b[24..32].copy_from_slice(&4096u64.to_le_bytes());
    b[32..36].copy_from_slice(&4242u32.to_le_bytes());
    b[36..40].copy_from_slice(&4026532288u32.to_le_bytes());
    b[40..44].copy_from_slice(&1448u32.to_le_bytes());
    b[44..48].copy_from_slice(&2_881_920_042u32.to_le_bytes());
    b[48..52].copy_from_slice(&1_029_384_756u32.to_le_bytes());
    b[52..54].copy_from_slice(&family.to_le_bytes());
    b[54..56].copy_from_slice(&41234u16.to_le_bytes());
    b[56..58].copy_from_slice(&8080u16.to_le_bytes());
    b[58] = stage;
    b[59] = 1; // ESTABLISHED
    b[60] = clock;
    if family == 10 {
        b[64..80].copy_from_slice(&"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        b[80..96].copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    } else {
        b[64..68].copy_from_slice(&[10, 0, 0, 1]);
        b[80..84].copy_from_slice(&[10, 0, 0, 2]);
    }
    b[96..102].copy_from_slice(b"nginx\0");
    b[112..117].copy_from_slice(b"eth0\0");
    b
}

#[test]
fn decodes_every_field_into_upstreams_document() {
    let record = RxRecord::decode(&raw_record(2, 2, 0)).expect("decodes");
    assert_eq!(record.boot_ns, 123_456);
    assert_eq!(record.cgroup_id, 77);
    assert_eq!(record.clock, StampClock::Realtime);
    let data = serde_json::to_value(record.data(115)).unwrap();
    assert_eq!(
        data,
        serde_json::json!({
            "comm": "nginx",
            "pid": 4242,
            "latency_stage": "RX_STAGE_USERCOPY",
            "latency_ms": 250.5,
            "latency_threshold_ms": 115,
            "netdev_name": "eth0",
            "net_namespace_inum": 4026532288u32,
            "net_namespace_cookie": 4096,
            "tcp_state": "ESTABLISHED",
            "tcp_saddr": "10.0.0.1",
            "tcp_daddr": "10.0.0.2",
            "tcp_sport": 41234,
            "tcp_dport": 8080,
            "tcp_seq": 2881920042u32,
            "tcp_ack_seq": 1029384756u32,
            "packet_len_bytes": 1448,
        })
    );
}

#[test]
fn stage_names_follow_upstream_and_name_ipv6_tcp_tcpv6() {
    let name = |stage, family| {
        RxRecord::decode(&raw_record(stage, family, 1))
            .unwrap()
            .data(1)
            .latency_stage
    };
    assert_eq!(name(0, 2), "RX_STAGE_NETIF");
    assert_eq!(name(0, 10), "RX_STAGE_NETIF");
    assert_eq!(name(1, 2), "RX_STAGE_TCPV4");
    assert_eq!(name(1, 10), "RX_STAGE_TCPV6");
    assert_eq!(name(2, 10), "RX_STAGE_USERCOPY");
    let v6 = RxRecord::decode(&raw_record(1, 10, 2)).unwrap();
    assert_eq!(v6.clock, StampClock::Tai);
    assert_eq!(v6.data(10).tcp_saddr, "fd00::1");
    assert_eq!(v6.data(10).tcp_daddr, "fd00::2");
}

#[test]
fn the_document_threshold_is_the_records_stages() {
    let settings = NetRxLatencyConfig {
        netif_threshold_ms: 7,
        tcp_threshold_ms: 11,
        usercopy_threshold_ms: 130,
        ..Default::default()
    };
    for (stage, expected) in [(0u8, 7u64), (1, 11), (2, 130)] {
        let record = RxRecord::decode(&raw_record(stage, 2, 0)).unwrap();
        let threshold = settings.threshold_ms(record.stage);
        assert_eq!(record.data(threshold).latency_threshold_ms, expected);
    }
}

#[test]
fn garbled_and_truncated_records_are_rejected_and_counted() {
    let bad = Cell::new(0);
    let decode = counting_decoder(&bad);
    let good = raw_record(0, 2, 1);
    assert!(decode(&good).is_some());
    assert_eq!(bad.get(), 0);
    let truncated = &good[..RxRecord::SIZE - 1];
    let mut bad_stage = good.clone();
    bad_stage[58] = 3;
    let mut bad_family = good.clone();
    bad_family[52..54].copy_from_slice(&7u16.to_le_bytes());
    let mut bad_clock = good.clone();
    bad_clock[60] = 3;
    for garbled in [truncated, &bad_stage, &bad_family, &bad_clock, &[][..]] {
        assert!(decode(garbled).is_none());
    }
    assert_eq!(bad.get(), 5);
}

#[test]
fn kernel_config_layout_matches_struct_rx_config() {
    let bytes = RxConfig {
        threshold_ns: [5_000_000, 10_000_000, 115_000_000],
        tai_offset_ns: -37_000_000_000,
        excluded_netns: 4026531840,
    }
    .to_bytes();
    assert_eq!(&bytes[0..8], &5_000_000u64.to_le_bytes());
    assert_eq!(&bytes[8..16], &10_000_000u64.to_le_bytes());
    assert_eq!(&bytes[16..24], &115_000_000u64.to_le_bytes());
    assert_eq!(&bytes[24..32], &(-37_000_000_000i64).to_le_bytes());
    assert_eq!(&bytes[32..36], &4026531840u32.to_le_bytes());
    assert_eq!(&bytes[36..40], &[0; 4]);
}

#[test]
fn defaults_are_upstreams_and_bad_settings_are_named() {
    let d = NetRxLatencyConfig::default();
    assert_eq!(
        (
            d.netif_threshold_ms,
            d.tcp_threshold_ms,
            d.usercopy_threshold_ms
        ),
        (5, 10, 115)
    );
    assert!(d.excluded_host_netns);
    assert_eq!(d.max_events_per_second, 100);
    assert!(d.validate().is_ok());
    let zero = NetRxLatencyConfig {
        tcp_threshold_ms: 0,
        ..Default::default()
    };
    let err = zero.validate().unwrap_err().to_string();
    assert!(err.contains("tcp_threshold_ms"), "{err}");
    let qos = NetRxLatencyConfig {
        excluded_container_qos: vec!["BestEffort".into(), "gold".into()],
        ..Default::default()
    };
    let err = qos.validate().unwrap_err().to_string();
    assert!(err.contains("`gold`"), "{err}");
    assert!(
        !err.contains("BestEffort"),
        "case-insensitive as upstream: {err}"
    );
}

#[test]
fn tai_offset_is_whole_seconds_close_to_the_clocks() {
    assert_eq!(round_offset(37_000_000_450), 37_000_000_000);
    assert_eq!(round_offset(-999_999_000), -1_000_000_000);
    assert_eq!(round_offset(1_200), 0);
    let offset = tai_offset_ns().expect("CLOCK_TAI");
    assert_eq!(offset % 1_000_000_000, 0);
    // The kernel's TAI offset is 0 or the leap second count (37 s since 2017).
    assert!((0..=60_000_000_000).contains(&offset), "{offset}");
}

fn round_offset(delta: i128) -> i64 {
    timestamps::round_to_second(delta)
}

#[test]
fn the_timestamp_socket_asks_for_rx_software_stamps() {
    let stamps = RxTimestamps::enable().expect("SO_TIMESTAMPING");
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len outlive the call and have the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            stamps.fd(),
            libc::SOL_SOCKET,
            37,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(
        value as libc::c_uint & libc::SOF_TIMESTAMPING_RX_SOFTWARE,
        libc::SOF_TIMESTAMPING_RX_SOFTWARE
    );
}
