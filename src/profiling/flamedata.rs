//! Upstream's `flamedata` (`[]flamegraph.FrameData{level, value, self, label}`): the flame graph
//! as Grafana's nested-set data frame, as upstream's `perf` puts it in event documents. Level 0
//! is the root `total`; nodes follow in depth-first pre-order with siblings sorted by name (the
//! phlare tree order upstream goes through); a stack is the comm, then its frames root→leaf,
//! kernel frames suffixed `_[k]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::folded::{sample_value, stack_labels};
use super::Profile;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameData {
    pub level: i64,
    pub value: i64,
    #[serde(rename = "self")]
    pub self_value: i64,
    pub label: String,
}

#[derive(Default)]
struct Node {
    value: u64,
    self_value: u64,
    children: BTreeMap<String, Node>,
}

/// The flame data of `profile` (empty for a profile without samples).
pub fn to_flamedata(profile: &Profile) -> Vec<FrameData> {
    let mut root = Node::default();
    for sample in &profile.samples {
        let value = sample_value(profile.kind, sample);
        if value == 0 {
            continue;
        }
        root.value += value;
        let mut node = &mut root;
        for label in stack_labels(sample) {
            node = node.children.entry(label).or_default();
            node.value += value;
        }
        node.self_value += value;
    }
    let mut out = Vec::new();
    if root.value > 0 {
        walk(&root, "total", 0, &mut out);
    }
    out
}

/// Folded stack lines (`a;b;c <self>`) back from flame data: the inverse of [`to_flamedata`]
/// (the root `total` left out), so a stored document's flame graph can be drawn again. Frames
/// out of order (a level deeper than its parent's + 1) end the walk: the rest cannot be placed.
pub fn to_folded_lines(frames: &[FrameData]) -> Vec<String> {
    let mut path: Vec<&str> = Vec::new();
    let mut lines = Vec::new();
    for frame in frames.iter().filter(|f| f.level > 0) {
        let depth = usize::try_from(frame.level - 1).unwrap_or(0);
        if depth > path.len() {
            break;
        }
        path.truncate(depth);
        path.push(&frame.label);
        if frame.self_value > 0 {
            lines.push(format!("{} {}", path.join(";"), frame.self_value));
        }
    }
    lines.sort();
    lines
}

fn walk(node: &Node, label: &str, level: i64, out: &mut Vec<FrameData>) {
    out.push(FrameData {
        level,
        value: i64::try_from(node.value).unwrap_or(i64::MAX),
        self_value: i64::try_from(node.self_value).unwrap_or(i64::MAX),
        label: label.to_string(),
    });
    for (name, child) in &node.children {
        walk(child, name, level + 1, out);
    }
}
