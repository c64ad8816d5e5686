//! Encodings of a small hand-built profile.

use super::flamedata::{to_flamedata, FrameData};
use super::folded::to_folded;
use super::summary::top_frames;
use super::*;

fn frame(function: &str, kernel: bool) -> Frame {
    Frame {
        function: function.into(),
        module: Some(if kernel { "[kernel]" } else { "/bin/app" }.into()),
        kernel,
        address: 0x1000,
    }
}

fn sample(comm: &str, leaf_first: &[(&str, bool)], count: u64, value_ns: u64) -> StackSample {
    StackSample {
        frames: leaf_first.iter().map(|(f, k)| frame(f, *k)).collect(),
        labels: SampleLabels {
            pid: 7,
            comm: comm.into(),
            ..Default::default()
        },
        count,
        value_ns,
    }
}

fn profile(kind: ProfileKind, samples: Vec<StackSample>) -> Profile {
    Profile {
        kind,
        start_unix_ns: 0,
        duration_ns: 1_000_000_000,
        frequency_hz: 99,
        host: "h".into(),
        samples,
    }
}

fn cpu_profile() -> Profile {
    profile(
        ProfileKind::Cpu,
        vec![
            sample("app", &[("spin", false), ("main", false)], 8, 0),
            sample(
                "app",
                &[("do_syscall_64", true), ("write", false), ("main", false)],
                2,
                0,
            ),
            // Same stack, another pid: merged in folded output.
            sample("app", &[("spin", false), ("main", false)], 1, 0),
        ],
    )
}

#[test]
fn folded_lines_run_root_to_leaf_with_kernel_suffix_and_merge_identical_stacks() {
    assert_eq!(
        to_folded(&cpu_profile()),
        "app;main;spin 9\napp;main;write;do_syscall_64_[k] 2\n"
    );
}

#[test]
fn off_cpu_folded_values_are_microseconds_blocked() {
    let p = profile(
        ProfileKind::OffCpu,
        vec![sample(
            "sleeper",
            &[("schedule", true), ("nanosleep", false)],
            3,
            1_500_000_000,
        )],
    );
    assert_eq!(to_folded(&p), "sleeper;nanosleep;schedule_[k] 1500000\n");
}

#[test]
fn flamedata_is_a_pre_order_nested_set_under_total() {
    let data = to_flamedata(&cpu_profile());
    let row = |level, value, self_value, label: &str| FrameData {
        level,
        value,
        self_value,
        label: label.into(),
    };
    assert_eq!(
        data,
        vec![
            row(0, 11, 0, "total"),
            row(1, 11, 0, "app"),
            row(2, 11, 0, "main"),
            row(3, 9, 9, "spin"),
            row(3, 2, 0, "write"),
            row(4, 2, 2, "do_syscall_64_[k]"),
        ]
    );
    let json = serde_json::to_value(&data[0]).unwrap_or_default();
    assert_eq!(json["self"], 0);
    assert_eq!(json["label"], "total");
    assert!(to_flamedata(&profile(ProfileKind::Cpu, vec![])).is_empty());
}

#[test]
fn top_frames_rank_leaf_self_values() {
    let top = top_frames(&cpu_profile(), 5);
    assert_eq!(top.len(), 2);
    assert_eq!(top[0].label, "spin");
    assert_eq!(top[0].value, 9);
    assert!((top[0].share - 9.0 / 11.0).abs() < 1e-9);
    assert_eq!(top[1].label, "do_syscall_64_[k]");
}

#[test]
fn svg_names_the_frames_and_an_empty_profile_says_so() {
    let svg = flamegraph::to_svg(&cpu_profile(), "cpu").unwrap_or_default();
    let text = String::from_utf8_lossy(&svg);
    assert!(text.starts_with("<?xml"), "{}", &text[..text.len().min(80)]);
    assert!(text.contains("spin"));
    // inferno shows kernel frames without perf's `_[k]` marker (it colours them instead).
    assert!(text.contains("do_syscall_64"));
    let empty = profile(ProfileKind::Cpu, vec![]);
    let svg = flamegraph::to_svg(&empty, "cpu <host>").unwrap_or_default();
    let text = String::from_utf8_lossy(&svg);
    assert!(
        text.contains("No samples") && text.contains("cpu &lt;host&gt;"),
        "{text}"
    );
}

#[test]
fn formats_parse_by_name_and_by_file_extension() {
    assert_eq!(OutputFormat::parse("svg"), Ok(OutputFormat::Svg));
    assert_eq!(OutputFormat::parse("json"), Ok(OutputFormat::FlameData));
    let err = OutputFormat::parse("png").unwrap_err();
    assert!(err.contains("png") && err.contains("folded"), "{err}");
    assert_eq!(
        OutputFormat::from_file_name("flame.SVG"),
        Ok(OutputFormat::Svg)
    );
    assert_eq!(
        OutputFormat::from_file_name("x.pb.gz"),
        Ok(OutputFormat::Pprof)
    );
    assert!(OutputFormat::from_file_name("flame").is_err());
    let raw = encode(&cpu_profile(), OutputFormat::Raw, "t").unwrap_or_default();
    let back: Profile = serde_json::from_slice(&raw).expect("raw is the model");
    assert_eq!(back, cpu_profile());
}

#[test]
fn flamedata_folds_back_into_the_profile_s_stacks() {
    let profile = cpu_profile();
    let frames = to_flamedata(&profile);
    assert_eq!(
        flamedata::to_folded_lines(&frames),
        folded::folded_lines(&profile)
    );
    // A frame deeper than its parent + 1 cannot be placed: the walk stops there.
    let broken = vec![
        FrameData {
            level: 0,
            value: 3,
            self_value: 0,
            label: "total".into(),
        },
        FrameData {
            level: 1,
            value: 3,
            self_value: 1,
            label: "a".into(),
        },
        FrameData {
            level: 3,
            value: 2,
            self_value: 2,
            label: "c".into(),
        },
    ];
    assert_eq!(flamedata::to_folded_lines(&broken), vec!["a 1".to_string()]);
}
