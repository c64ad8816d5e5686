//! The frames a profile spends most in: each leaf frame's self value, largest first (the CLI's
//! summary, and what tests check).

use std::collections::HashMap;

use super::folded::{frame_label, sample_value};
use super::Profile;

#[derive(Debug, Clone, PartialEq)]
pub struct TopFrame {
    /// The leaf frame as folded output names it (`_[k]` for kernel frames).
    pub label: String,
    pub module: Option<String>,
    /// Self value: samples (on-CPU) or µs (off-CPU).
    pub value: u64,
    /// Share of the profile's total, 0..=1.
    pub share: f64,
}

/// The `n` leaf frames with the largest self value.
pub fn top_frames(profile: &Profile, n: usize) -> Vec<TopFrame> {
    let mut by_leaf: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut total = 0u64;
    for sample in &profile.samples {
        let value = sample_value(profile.kind, sample);
        total += value;
        let key = match sample.frames.first() {
            Some(leaf) => (frame_label(leaf), leaf.module.clone()),
            None => ("[no stack]".to_string(), None),
        };
        *by_leaf.entry(key).or_default() += value;
    }
    let mut top: Vec<TopFrame> = by_leaf
        .into_iter()
        .filter(|(_, value)| *value > 0)
        .map(|((label, module), value)| TopFrame {
            label,
            module,
            value,
            share: if total > 0 {
                value as f64 / total as f64
            } else {
                0.0
            },
        })
        .collect();
    top.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.label.cmp(&b.label)));
    top.truncate(n);
    top
}
