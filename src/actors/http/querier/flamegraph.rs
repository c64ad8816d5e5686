//! The merged call tree of the selected samples and its flame graph levels (Pyroscope's
//! `FlameGraph`: names, per-level (x, total, self, name) quadruples).

use super::*;

#[derive(Default, Debug)]
pub(super) struct Node {
    pub(super) total: i64,
    pub(super) self_value: i64,
    pub(super) children: BTreeMap<String, Node>,
}

/// The merged call tree (root = "total") of the selected samples.
pub(super) fn merge(
    windows: &[std::sync::Arc<Profile>],
    app: &str,
    spec: &TypeSpec,
    selector: &[Matcher],
    start: i64,
    end: i64,
) -> Node {
    let mut root = Node::default();
    let windows = windows
        .iter()
        .filter(|w| w.kind == spec.kind && in_range(w, start, end));
    for window in windows {
        for sample in &window.samples {
            if !selected(selector, app, window, sample, spec.id) {
                continue;
            }
            let value = value_of(spec, sample);
            root.total += value;
            let mut node = &mut root;
            // Frames are leaf first; the tree goes root to leaf.
            for frame in sample.frames.iter().rev() {
                node = node.children.entry(frame.function.clone()).or_default();
                node.total += value;
            }
            node.self_value += value;
        }
    }
    root
}

/// Pyroscope's FlameGraph: one level per depth, 4 values a node (x offset as the delta from
/// the previous node's end, total, self, name index); a node's self comes before its
/// children. With `max_nodes` > 0, nodes smaller than the max_nodes-th largest are merged
/// into "other".
pub(super) fn flame_graph(root: &Node, max_nodes: i64) -> pb::FlameGraph {
    let min_total = if max_nodes > 0 {
        let mut totals = Vec::new();
        collect_totals(root, &mut totals);
        totals.sort_unstable_by(|a, b| b.cmp(a));
        totals
            .get(max_nodes as usize)
            .map_or(0, |t| t.saturating_add(1))
    } else {
        0
    };
    let mut graph = Graph {
        names: vec!["total".to_string()],
        ids: BTreeMap::from([("total".to_string(), 0)]),
        levels: Vec::new(),
        max_self: 0,
    };
    graph.visit(
        0,
        0,
        "total",
        root.total,
        root.self_value,
        Some(root),
        min_total,
    );
    let levels = graph
        .levels
        .into_iter()
        .map(|nodes| {
            let mut values = Vec::with_capacity(nodes.len() * 4);
            let mut end = 0;
            for (x, total, self_value, name) in nodes {
                values.extend([x - end, total, self_value, name]);
                end = x + total;
            }
            pb::Level { values }
        })
        .collect();
    pb::FlameGraph {
        names: graph.names,
        levels,
        total: root.total,
        max_self: graph.max_self,
    }
}

pub(super) fn collect_totals(node: &Node, out: &mut Vec<i64>) {
    for child in node.children.values() {
        out.push(child.total);
        collect_totals(child, out);
    }
}

pub(super) struct Graph {
    pub(super) names: Vec<String>,
    pub(super) ids: BTreeMap<String, i64>,
    /// Per depth: (x, total, self, name index), in x order.
    pub(super) levels: Vec<Vec<(i64, i64, i64, i64)>>,
    pub(super) max_self: i64,
}

impl Graph {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn visit(
        &mut self,
        depth: usize,
        x: i64,
        name: &str,
        total: i64,
        self_value: i64,
        node: Option<&Node>,
        min_total: i64,
    ) {
        let id = match self.ids.get(name) {
            Some(id) => *id,
            None => {
                let id = self.names.len() as i64;
                self.names.push(name.to_string());
                self.ids.insert(name.to_string(), id);
                id
            }
        };
        if self.levels.len() <= depth {
            self.levels.push(Vec::new());
        }
        self.levels[depth].push((x, total, self_value, id));
        self.max_self = self.max_self.max(self_value);
        let Some(node) = node else { return };
        let mut child_x = x + self_value;
        let mut other = 0;
        for (child_name, child) in &node.children {
            if child.total < min_total {
                other += child.total;
                continue;
            }
            self.visit(
                depth + 1,
                child_x,
                child_name,
                child.total,
                child.self_value,
                Some(child),
                min_total,
            );
            child_x += child.total;
        }
        if other > 0 {
            self.visit(depth + 1, child_x, "other", other, other, None, min_total);
        }
    }
}
