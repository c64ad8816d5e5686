//! dload (AutoTracing, container): every `interval_ms` (10 s) count each normal container's
//! tasks by state, step two load averages with the kernel's `calc_load` (all runnable + D
//! tasks, and D tasks alone) and, when the D-load average passes `threshold`, capture the kernel
//! stack of every D-state task of the container and of the host into an `autotracing` document
//! (`tracer_name = "dload"`, upstream's fields). Per-container cooldown `cooldown_secs`.

mod decide;
mod loadavg;
mod stacks;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::autotracing::Cooldown;
use crate::containers::{Container, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::events::{EventDocument, TracerType};
use crate::exposition::MetricSet;

pub use decide::{should_capture, Decision};
pub use loadavg::{calc_load, to_f64, LoadPair, EXP_1, FIXED_1, FSHIFT};
pub use stacks::{parse_stack, stack_text, BlockedTask};
pub use tasks::{count_state, parse_stat, parse_tids, TaskCounts};

const NAME: &str = "dload";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// AutoTracing dload: container D-state load average (kernel calc_load, EXP_1 once per
/// sample) above `threshold` → stacks of every D-state task of the container and the host.
pub struct DloadConfig {
    /// Turn the trigger on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Sampling period in ms (upstream: 10000; the average's constant assumes it).
    pub interval_ms: u64,
    /// Capture when a container's D-load average exceeds this (upstream: 5).
    pub threshold: f64,
    /// Quiet time per container after a capture, in seconds (upstream: 1800).
    pub cooldown_secs: u64,
    /// Quiet time for every container after any capture, in seconds.
    pub global_cooldown_secs: u64,
    /// At most this many host D-state tasks are listed with their stacks.
    pub max_host_tasks: usize,
}

impl Default for DloadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 10_000,
            threshold: 5.0,
            cooldown_secs: 1800,
            global_cooldown_secs: 0,
            max_host_tasks: 256,
        }
    }
}

crate::probe_settings!(DloadConfig, "dload", |c: &DloadConfig| {
    if !c.threshold.is_finite() || c.threshold < 0.0 {
        return Err(format!(
            "threshold must be a non-negative number, not {}",
            c.threshold
        ));
    }
    Ok(())
});

/// Upstream's `tracer_data` of a dload document, plus the structured task lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DloadData {
    pub threshold: f64,
    #[serde(flatten)]
    pub counts: TaskCounts,
    pub load_avg: f64,
    pub dload_avg: f64,
    /// Upstream classifies stacks against its issue list; none is shipped, so it stays empty.
    pub known_issue: String,
    /// The container's D-state tasks, then the host's, as text (header line + frames).
    pub stack: String,
    pub container_tasks: Vec<BlockedTask>,
    pub host_tasks: Vec<BlockedTask>,
    pub host_tasks_total: usize,
}

pub struct DloadProbe {
    ctx: ProbeContext,
    settings: DloadConfig,
    loads: HashMap<String, LoadPair>,
    cooldown: Cooldown<String>,
    captures_total: u64,
}

impl Probe for DloadProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = DloadConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let stat = ctx.procfs("self/stat");
        if !stat.exists() {
            return Err(ProbeError::Unsupported {
                probe: NAME,
                reason: format!("{} missing: no procfs", stat.display()),
            });
        }
        Ok(Self {
            ctx: ctx.clone(),
            settings: settings.clone(),
            loads: HashMap::new(),
            cooldown: Cooldown::new(
                Duration::from_secs(settings.global_cooldown_secs),
                Duration::from_secs(settings.cooldown_secs),
            ),
            captures_total: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let containers = self.ctx.containers.borrow().clone();
        let mut seen = HashMap::new();
        let load_family = out.gauge(
            "huatuo_bamai_dload_container_dload_avg",
            "D-state (uninterruptible) load average of a container's tasks (kernel calc_load, EXP_1 per sample).",
        );
        let mut fired = Vec::new();
        let now = Instant::now();
        for container in containers.for_metrics(MetricScope::Normal) {
            let dir = self.ctx.cgroup.dir("cpu", &container.cgroup_path);
            // A container that vanished between discovery and now: skipped this round.
            let Ok((counts, blocked)) = tasks::scan_cgroup(&self.ctx.procfs_root, &dir) else {
                continue;
            };
            let mut pair = self.loads.get(&container.id).copied().unwrap_or_default();
            pair.step(counts.nr_running, counts.nr_uninterruptible);
            seen.insert(container.id.clone(), pair);
            load_family.push(container.labels(), to_f64(pair.dload));
            let decision = should_capture(to_f64(pair.dload), self.settings.threshold);
            if decision == Decision::Capture && self.cooldown.ready(&container.id, now) {
                fired.push((container.clone(), counts, blocked, pair));
            }
        }
        self.loads = seen;
        for (container, counts, blocked, pair) in fired {
            self.cooldown.fired(container.id.clone(), now);
            let document = self.document(&container, counts, &blocked, pair);
            self.captures_total += 1;
            self.ctx.events.publish(document);
        }
        out.counter(
            "huatuo_bamai_dload_captures_total",
            "dload AutoTracing captures (documents written); cumulative.",
        )
        .push(vec![], self.captures_total as f64);
        Ok(())
    }
}

impl DloadProbe {
    fn document(
        &self,
        container: &Arc<Container>,
        counts: TaskCounts,
        blocked: &[tasks::DTask],
        pair: LoadPair,
    ) -> EventDocument {
        let procfs = &self.ctx.procfs_root;
        let container_tasks: Vec<BlockedTask> = blocked
            .iter()
            .filter_map(|t| stacks::read_blocked(procfs, t.tid))
            .collect();
        let (host_tasks, host_tasks_total) =
            stacks::host_blocked(procfs, self.settings.max_host_tasks);
        let mut stack = stack_text(&container_tasks);
        if !host_tasks.is_empty() {
            stack.push_str("\n\n");
            stack.push_str(&stack_text(&host_tasks));
        }
        let data = DloadData {
            threshold: self.settings.threshold,
            counts,
            load_avg: to_f64(pair.load),
            dload_avg: to_f64(pair.dload),
            known_issue: String::new(),
            stack,
            container_tasks,
            host_tasks,
            host_tasks_total,
        };
        let mut document = EventDocument::new(
            &self.ctx.hostname,
            &self.ctx.region,
            NAME,
            Some(container),
            container.cgroup_id,
            serde_json::to_value(&data).unwrap_or_default(),
        );
        document.tracer_type = TracerType::Autotracing;
        document
    }
}

#[cfg(test)]
mod tests;
