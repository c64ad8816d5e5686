use super::*;
use crate::config::Section;

#[test]
fn sums_each_zone_across_cpus() {
    let per_zone = vec![vec![1, 2], vec![0, 5], vec![7, 0], vec![0, 0]];
    assert_eq!(sum_zones(&per_zone), [3, 5, 7, 0]);
}

#[test]
fn missing_zones_are_zero() {
    assert_eq!(sum_zones(&[vec![4]]), [4, 0, 0, 0]);
}

#[test]
fn interval_is_validated() {
    assert!(RunqlatConfig::default().validate().is_ok());
    let cfg = RunqlatConfig {
        interval_ms: 0,
        ..RunqlatConfig::default()
    };
    assert!(cfg.validate().is_err());
}
