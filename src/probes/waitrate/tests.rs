use super::*;
use std::collections::HashMap;

fn rule() -> Rule {
    Rule {
        threshold: 0.5,
        spike_factor: 3.0,
        min_history: 5,
        min_run_ns: 100_000_000,
    }
}

fn window(run_ms: u64, wait_ms: u64) -> CgroupTimes {
    CgroupTimes {
        run: run_ms * 1_000_000,
        wait: wait_ms * 1_000_000,
        inner: 0,
        exter: wait_ms * 1_000_000,
    }
}

#[test]
fn rates_are_wait_per_run_and_split_inner_exter() {
    let before = CgroupTimes::from_array([100, 10, 4, 6]);
    let now = CgroupTimes::from_array([300, 210, 54, 156]);
    let rates = Rates::of(&now.since(&before));
    assert_eq!(rates.wait_rate, 1.0);
    assert_eq!(rates.inner_wait_rate, 0.25);
    assert_eq!(rates.exter_wait_rate, 0.75);
    assert_eq!(Rates::of(&CgroupTimes::default()), Rates::default());
    // A recreated entry (counters went backwards) counts from zero.
    assert_eq!(before.since(&now).run, 100);
}

#[test]
fn a_high_rate_fires_without_history_and_a_low_one_does_not() {
    assert_eq!(should_capture(&rule(), &window(1000, 2000), &[]), Some(0.5));
    assert_eq!(should_capture(&rule(), &window(1000, 400), &[]), None);
    // Nearly idle: the rate is noise.
    assert_eq!(should_capture(&rule(), &window(50, 500), &[]), None);
}

#[test]
fn with_history_only_a_spike_above_mean_plus_std_fires() {
    // A container that always waits ~1.0: 1.1 is its normal, not a spike.
    let history = [1.0, 0.9, 1.1, 1.0, 1.0, 0.95, 1.05];
    assert_eq!(should_capture(&rule(), &window(1000, 1100), &history), None);
    let fired = should_capture(&rule(), &window(1000, 3000), &history).expect("spike");
    assert!(fired > 1.0 && fired < 1.3, "threshold in force {fired}");
    // Spike rule off: the plain threshold applies.
    let plain = Rule {
        spike_factor: 0.0,
        ..rule()
    };
    assert_eq!(
        should_capture(&plain, &window(1000, 1100), &history),
        Some(0.5)
    );
}

#[test]
fn cooldown_keeps_a_container_quiet_after_a_capture() {
    let t0 = Instant::now();
    let mut cooldown = Cooldown::new(Duration::ZERO, Duration::from_secs(1800));
    cooldown.fired(7u64, t0);
    assert!(!cooldown.ready(&7, t0 + Duration::from_secs(60)));
    assert!(cooldown.ready(&8, t0 + Duration::from_secs(60)));
}

#[test]
fn contenders_rank_by_cpu_time_taken_in_the_window() {
    let before = HashMap::from([((1, 10), 100), ((1, 20), 1000), ((2, 10), 5)]);
    let now = HashMap::from([((1, 10), 900), ((1, 20), 1300), ((1, 30), 50), ((2, 10), 5)]);
    let deltas = contention_deltas(&now, &before);
    assert!(!deltas.contains_key(&2), "no change for victim 2");
    assert_eq!(
        rank_contenders(&deltas[&1]),
        vec![(10, 800), (20, 300), (30, 50)]
    );
}

#[test]
fn config_rejects_bad_values() {
    use crate::config::Section;
    assert!(WaitrateConfig::default().validate().is_ok());
    let bad = WaitrateConfig {
        threshold: f64::NAN,
        ..Default::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("threshold"));
    let bad = WaitrateConfig {
        min_history_samples: 500,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
}
