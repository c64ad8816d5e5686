use super::*;
use crate::config::Section;

#[test]
fn vector_names_match_kernel_numbers() {
    assert_eq!(vector_number("NET_TX"), Ok(2));
    assert_eq!(vector_number("net_rx"), Ok(3));
    assert_eq!(vector_number("RCU"), Ok(9));
    assert!(vector_number("NET_RXX")
        .unwrap_err()
        .contains("unknown softirq vector `NET_RXX`"));
}

#[test]
fn latency_index_matches_bpf_layout() {
    // softirq.bpf.c: key = vec_nr * HUATUO_NR_ZONES + zone
    assert_eq!(latency_index(0, 0), 0);
    assert_eq!(latency_index(3, 2), 14);
    assert_eq!(latency_index(9, 3), 39); // last slot of a 40-entry map
}

#[test]
fn config_rejects_unknown_vector_and_tiny_interval() {
    let mut cfg = SoftirqConfig::default();
    assert!(cfg.validate().is_ok());
    cfg.vectors.push("BOGUS".into());
    assert!(cfg.validate().unwrap_err().reason.contains("BOGUS"));
    let cfg = SoftirqConfig {
        interval_ms: 10,
        ..SoftirqConfig::default()
    };
    assert!(cfg.validate().unwrap_err().reason.contains("interval_ms"));
}
