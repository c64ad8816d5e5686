//! Folded stacks, the perf / inferno (`stackcollapse`) convention: one line per distinct stack,
//! `comm;user frames root→leaf;kernel frames root→leaf_[k] <value>`. On-CPU values are sample
//! counts; off-CPU values are microseconds blocked (a count of episodes would hide their length).

use std::collections::BTreeMap;

use super::{Frame, Profile, ProfileKind, StackSample};

/// The unit of a folded value of `kind` (shown by flame graphs).
pub fn value_unit(kind: ProfileKind) -> &'static str {
    match kind {
        ProfileKind::Cpu => "samples",
        ProfileKind::OffCpu => "us",
    }
}

/// The folded value of one sample: samples (on-CPU) or microseconds (off-CPU).
pub fn sample_value(kind: ProfileKind, sample: &StackSample) -> u64 {
    match kind {
        ProfileKind::Cpu => sample.count,
        ProfileKind::OffCpu => sample.value_ns / 1000,
    }
}

/// A frame's name as it appears in folded output: kernel frames carry perf's `_[k]` suffix; `;`
/// (the separator) and line breaks cannot appear in a name.
pub fn frame_label(frame: &Frame) -> String {
    let name: String = frame
        .function
        .chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    if frame.kernel {
        format!("{name}_[k]")
    } else {
        name
    }
}

/// The names of one sample's stack, root first: the task's comm, then its frames root→leaf.
pub fn stack_labels(sample: &StackSample) -> Vec<String> {
    let comm = if sample.labels.comm.is_empty() {
        "[unknown]".to_string()
    } else {
        sample.labels.comm.replace(';', ":")
    };
    std::iter::once(comm)
        .chain(sample.frames.iter().rev().map(frame_label))
        .collect()
}

/// Folded lines of `profile`, identical stacks (of different pids) merged, sorted by stack
/// (inferno wants sorted input); zero-valued stacks are left out.
pub fn folded_lines(profile: &Profile) -> Vec<String> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for sample in &profile.samples {
        let value = sample_value(profile.kind, sample);
        if value == 0 {
            continue;
        }
        *merged.entry(stack_labels(sample).join(";")).or_default() += value;
    }
    merged
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect()
}

/// The folded text of `profile` (one line per stack, newline-terminated).
pub fn to_folded(profile: &Profile) -> String {
    let mut text = String::new();
    for line in folded_lines(profile) {
        text.push_str(&line);
        text.push('\n');
    }
    text
}
