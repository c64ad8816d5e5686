//! waitrate's arithmetic, pure: a container's wait rates between two samples of its kernel
//! counters, the decision to capture, and the contenders ranked by the CPU time they took while
//! it waited.

use std::collections::HashMap;

/// A cgroup's cumulative kernel counters (ns): run, run-queue wait, and the wait spent behind
/// its own tasks (inner) or other cgroups' (exter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupTimes {
    pub run: u64,
    pub wait: u64,
    pub inner: u64,
    pub exter: u64,
}

impl CgroupTimes {
    pub fn from_array(t: [u64; 4]) -> Self {
        Self {
            run: t[0],
            wait: t[1],
            inner: t[2],
            exter: t[3],
        }
    }

    /// `self - earlier` per counter; a counter that went backwards (the cgroup's map entry
    /// was recreated) counts from zero.
    pub fn since(&self, earlier: &CgroupTimes) -> CgroupTimes {
        let d = |now: u64, then: u64| if now >= then { now - then } else { now };
        CgroupTimes {
            run: d(self.run, earlier.run),
            wait: d(self.wait, earlier.wait),
            inner: d(self.inner, earlier.inner),
            exter: d(self.exter, earlier.exter),
        }
    }
}

/// Run-queue wait per unit of run time over one window: 1.0 = waited as long as it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub wait_rate: f64,
    pub inner_wait_rate: f64,
    pub exter_wait_rate: f64,
}

impl Rates {
    /// Rates of a window's deltas; all 0 when the cgroup did not run.
    pub fn of(delta: &CgroupTimes) -> Rates {
        if delta.run == 0 {
            return Rates::default();
        }
        let run = delta.run as f64;
        Rates {
            wait_rate: delta.wait as f64 / run,
            inner_wait_rate: delta.inner as f64 / run,
            exter_wait_rate: delta.exter as f64 / run,
        }
    }
}

/// What the decision needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Capture when the wait rate exceeds this.
    pub threshold: f64,
    /// And (once `min_history` samples exist) exceeds mean + `spike_factor` × std of the
    /// container's history; 0 turns the spike rule off.
    pub spike_factor: f64,
    pub min_history: usize,
    /// Windows in which the container ran less than this (ns) never fire: a nearly idle
    /// container's rate is noise.
    pub min_run_ns: u64,
}

/// `Some(threshold in force)` when the window should be captured.
pub fn should_capture(rule: &Rule, delta: &CgroupTimes, history: &[f64]) -> Option<f64> {
    if delta.run < rule.min_run_ns {
        return None;
    }
    let rate = Rates::of(delta).wait_rate;
    let mut threshold = rule.threshold;
    if rule.spike_factor > 0.0 && history.len() >= rule.min_history && !history.is_empty() {
        let n = history.len() as f64;
        let mean = history.iter().sum::<f64>() / n;
        let var = history.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
        threshold = threshold.max(mean + rule.spike_factor * var.sqrt());
    }
    (rate > threshold).then_some(threshold)
}

/// Contenders of one victim by CPU time taken while it waited in the window (ns), largest
/// first (ties by cgroup id, for a stable order).
pub fn rank_contenders(taken: &HashMap<u64, u64>) -> Vec<(u64, u64)> {
    let mut ranked: Vec<(u64, u64)> = taken
        .iter()
        .filter(|(_, ns)| **ns > 0)
        .map(|(cg, ns)| (*cg, *ns))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Per-window deltas of the cumulative (victim, contender) counters, grouped by victim.
pub fn contention_deltas(
    now: &HashMap<(u64, u64), u64>,
    before: &HashMap<(u64, u64), u64>,
) -> HashMap<u64, HashMap<u64, u64>> {
    let mut by_victim: HashMap<u64, HashMap<u64, u64>> = HashMap::new();
    for (&(victim, contender), &ns) in now {
        let then = before.get(&(victim, contender)).copied().unwrap_or(0);
        // An LRU-evicted pair that came back starts from zero.
        let delta = if ns >= then { ns - then } else { ns };
        if delta > 0 {
            *by_victim
                .entry(victim)
                .or_default()
                .entry(contender)
                .or_default() += delta;
        }
    }
    by_victim
}
