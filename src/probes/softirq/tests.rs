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

#[test]
fn only_online_cpus_are_exported() {
    use crate::probes::cpu_util::cpu_files::parse_cpu_list;
    let online = parse_cpu_list("0-1,4\n").unwrap();
    let exported: Vec<usize> = (0..8).filter(|&c| is_online(Some(&online), c)).collect();
    assert_eq!(exported, [0, 1, 4]);
    // Unknown (file unreadable): every possible CPU.
    assert!((0..8).all(|c| is_online(None, c)));
    assert!(parse_cpu_list("0-1,x")
        .unwrap_err()
        .contains("`x` is not a CPU"));
}
