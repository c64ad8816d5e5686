use super::*;
use std::time::{Duration, Instant};

/// Steps a container's averages over `series` of (running, D) counts; the first sample index
/// at which the trigger would capture.
fn first_capture(series: &[(u64, u64)], threshold: f64) -> Option<usize> {
    let mut pair = LoadPair::default();
    series.iter().position(|&(running, d)| {
        pair.step(running, d);
        should_capture(to_f64(pair.dload), threshold) == Decision::Capture
    })
}

#[test]
fn calc_load_matches_the_kernel_fixed_point() {
    // One 10 s step from 0 with 1 active task: (2048 * 164 + 2047) / 2048 = 164.
    assert_eq!(calc_load(0, 1), 164);
    // Falling: no round-up; 2048 * 1884 / 2048.
    assert_eq!(calc_load(FIXED_1, 0), EXP_1);
    // A steady load reaches its value and stays there.
    let mut load = 0;
    for _ in 0..200 {
        load = calc_load(load, 3);
    }
    assert_eq!(load, 3 * FIXED_1);
    assert_eq!(FSHIFT, 11);
}

#[test]
fn sustained_d_load_above_threshold_fires_after_the_average_climbs() {
    // Six D tasks: the average passes 5 only after ~22 samples (1 - 0.92^n > 5/6).
    let series = vec![(1, 6); 40];
    let at = first_capture(&series, 5.0).expect("fires");
    assert!((18..=26).contains(&at), "fired at sample {at}");
}

#[test]
fn d_load_below_threshold_or_a_short_spike_does_not_fire() {
    assert_eq!(first_capture(&[(2, 4); 200], 5.0), None);
    // 50 D tasks for one sample: the average only reaches ~4.
    let mut spike = vec![(0, 50)];
    spike.extend(vec![(0, 0); 50]);
    assert_eq!(first_capture(&spike, 5.0), None);
    // Runnable tasks count in load_avg, never in the D-load.
    assert_eq!(first_capture(&[(100, 0); 100], 5.0), None);
}

#[test]
fn cooldown_holds_back_the_same_container() {
    let mut cooldown = Cooldown::new(Duration::ZERO, Duration::from_secs(1800));
    let t0 = Instant::now();
    let id = "c1".to_string();
    assert!(cooldown.ready(&id, t0));
    cooldown.fired(id.clone(), t0);
    assert!(!cooldown.ready(&id, t0 + Duration::from_secs(10)));
    assert!(cooldown.ready(&"c2".to_string(), t0 + Duration::from_secs(10)));
    assert!(cooldown.ready(&id, t0 + Duration::from_secs(1800)));
}

#[test]
fn states_are_counted_by_letter() {
    let mut counts = TaskCounts::default();
    for state in ['R', 'S', 'S', 'D', 'T', 't', 'I', 'Z'] {
        count_state(&mut counts, state);
    }
    assert_eq!(
        counts,
        TaskCounts {
            nr_sleeping: 2,
            nr_running: 1,
            nr_stopped: 2,
            nr_uninterruptible: 1,
            nr_iowait: 0,
        }
    );
}

#[test]
fn stat_comm_may_hold_parentheses_and_tids_skip_garbage() {
    assert_eq!(
        parse_stat("42 (a (b) c) D 1 2 3"),
        Some(("a (b) c".to_string(), 'D'))
    );
    assert_eq!(parse_stat("garbage"), None);
    assert_eq!(parse_tids("1\n\nx\n 7 \n"), vec![1, 7]);
}

#[test]
fn stack_text_drops_addresses_and_names_each_task() {
    let stack =
        parse_stack("[<0>] percpu_rwsem_wait+0x10/0x20\n[<0>] ext4_buffered_write_iter+0x1/0x2\n");
    assert_eq!(
        stack,
        "percpu_rwsem_wait+0x10/0x20\next4_buffered_write_iter+0x1/0x2"
    );
    let task = BlockedTask {
        pid: 5,
        tid: 6,
        comm: "sh".into(),
        stack,
        stack_error: None,
    };
    assert!(stack_text(&[task]).starts_with("sh pid=5 tid=6 state=D\npercpu_rwsem_wait"));
}

#[test]
fn config_rejects_a_negative_threshold() {
    use crate::config::Section;
    let bad = DloadConfig {
        threshold: -1.0,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    assert!(DloadConfig::default().validate().is_ok());
}
