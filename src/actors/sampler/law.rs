//! The control law of adaptive sampling, free of I/O so it can be tested with synthetic cost
//! series. Every round it sees the measured overhead (a fraction of host CPU) and each probe's
//! share, and returns divisor changes:
//!
//! - over budget for `throttle_after` rounds in a row: throttle the most expensive throttleable
//!   probes, sized so the predicted overhead lands at `target` × budget (a probe's cost is taken
//!   as proportional to 1/divisor; at most ×16 per round); a probe already at `max_divisor` is
//!   skipped, the next one is taken. When the overhead would stay over the target even with
//!   every throttleable probe at zero, nothing is throttled: sampling would lose data for nothing;
//! - under `relax_below` × budget for `relax_after` rounds in a row: halve the divisor of the
//!   probe throttled last, but only if doubling its cost still predicts at most `target` ×
//!   budget. That gap between the throttle target and the relax threshold is the hysteresis:
//!   a relax step can never, by the same model, push the agent back over budget.

use std::collections::BTreeMap;

pub use crate::core::status::{Action, Decision};

/// A probe costing less than this fraction of the budget is never throttled: the excess comes
/// from elsewhere (e.g. scrapes) and sampling it would lose data for nothing.
const MIN_SHARE_OF_BUDGET: f64 = 0.05;
/// Largest multiplication of one divisor in one round: a burst the model misjudges costs at
/// most this much sampling, and sustained overload still gets there in a few rounds.
const MAX_STEP_FACTOR: u32 = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct ControlParams {
    /// Overhead allowed, as a fraction of host CPU (0.01 = 1 %).
    pub budget: f64,
    /// Throttling aims at this fraction of the budget (headroom against noise).
    pub target: f64,
    /// Relaxing starts below this fraction of the budget.
    pub relax_below: f64,
    /// Rounds in a row under `relax_below` before one relax step.
    pub relax_after: u32,
    /// Rounds in a row over budget before throttling (1 = at once; 2 ignores one-round bursts).
    pub throttle_after: u32,
    /// Ceiling of any divisor (floor is 1 = every event).
    pub max_divisor: u32,
}

impl Default for ControlParams {
    fn default() -> Self {
        Self {
            budget: 0.01,
            target: 0.8,
            relax_below: 0.5,
            relax_after: 3,
            throttle_after: 2,
            max_divisor: 65536,
        }
    }
}

/// One probe as the controller sees it in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeLoad {
    pub name: String,
    /// The probe's own overhead this round (BPF run time + its actor's tick time) / capacity.
    pub ratio: f64,
    /// Divisor in force; `None` = the probe cannot be throttled.
    pub divisor: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Controller {
    params: ControlParams,
    calm_rounds: u32,
    over_rounds: u32,
    /// Throttled probes, most recent last: relaxing undoes throttles in reverse order.
    throttled: Vec<String>,
    /// Divisor the controller wants for each probe it has touched (re-applied after restarts).
    wanted: BTreeMap<String, u32>,
}

impl Controller {
    pub fn new(params: ControlParams) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    pub fn params(&self) -> &ControlParams {
        &self.params
    }

    /// New settings (a live `ctl set`); divisors above a lowered ceiling come down to it.
    pub fn set_params(&mut self, params: ControlParams) {
        let max = params.max_divisor.max(1);
        for divisor in self.wanted.values_mut() {
            *divisor = (*divisor).min(max);
        }
        self.wanted.retain(|_, d| *d > 1);
        let wanted = &self.wanted;
        self.throttled.retain(|name| wanted.contains_key(name));
        self.params = params;
    }

    /// The divisor the controller wants for `probe` (1 unless it throttled it).
    pub fn wanted(&self, probe: &str) -> u32 {
        self.wanted.get(probe).copied().unwrap_or(1)
    }

    /// One round: `total` is the whole agent's overhead ratio, `probes` each probe's share.
    pub fn step(&mut self, total: f64, probes: &[ProbeLoad]) -> Vec<Decision> {
        let p = self.params.clone();
        if total > p.budget {
            self.calm_rounds = 0;
            self.over_rounds += 1;
            if self.over_rounds < p.throttle_after {
                return Vec::new();
            }
            return self.throttle(total, probes);
        }
        self.over_rounds = 0;
        if total >= p.budget * p.relax_below {
            self.calm_rounds = 0;
            return Vec::new();
        }
        self.calm_rounds += 1;
        if self.calm_rounds < p.relax_after {
            return Vec::new();
        }
        self.calm_rounds = 0;
        self.relax(total, probes).into_iter().collect()
    }

    fn throttle(&mut self, total: f64, probes: &[ProbeLoad]) -> Vec<Decision> {
        let p = &self.params;
        let mut excess = total - p.budget * p.target;
        let mut candidates: Vec<(&ProbeLoad, u32)> = probes
            .iter()
            .filter_map(|probe| probe.divisor.map(|d| (probe, self.current(probe, d))))
            .filter(|(probe, divisor)| {
                *divisor < p.max_divisor && probe.ratio >= p.budget * MIN_SHARE_OF_BUDGET
            })
            .collect();
        candidates.sort_by(|a, b| b.0.ratio.total_cmp(&a.0.ratio));
        let reducible: f64 = candidates.iter().map(|(probe, _)| probe.ratio).sum();
        if total - reducible > p.budget * p.target {
            return Vec::new();
        }
        let mut decisions = Vec::new();
        for (probe, from) in candidates {
            if excess <= 0.0 {
                break;
            }
            // cost × (1 - 1/factor) ≥ excess  ⇔  factor ≥ cost / (cost - excess).
            let factor = if probe.ratio > excess {
                (probe.ratio / (probe.ratio - excess)).ceil().max(2.0)
            } else {
                f64::from(p.max_divisor)
            };
            let factor = (factor.min(f64::from(MAX_STEP_FACTOR)) as u32)
                .next_power_of_two()
                .clamp(2, MAX_STEP_FACTOR);
            let to = from.saturating_mul(factor).min(p.max_divisor);
            excess -= probe.ratio * (1.0 - f64::from(from) / f64::from(to));
            decisions.push(Decision {
                probe: probe.name.clone(),
                action: Action::Throttle,
                from,
                to,
                overhead_ratio: total,
            });
        }
        for decision in &decisions {
            self.wanted.insert(decision.probe.clone(), decision.to);
            self.throttled.retain(|name| name != &decision.probe);
            self.throttled.push(decision.probe.clone());
        }
        decisions
    }

    fn relax(&mut self, total: f64, probes: &[ProbeLoad]) -> Option<Decision> {
        let p = &self.params;
        let name = self.throttled.last()?.clone();
        let from = self.wanted(&name);
        let ratio = probes
            .iter()
            .find(|probe| probe.name == name)
            .map_or(0.0, |probe| probe.ratio);
        let to = (from / 2).max(1);
        // Halving the divisor doubles the probe's sampled cost.
        let predicted = total + ratio * (f64::from(from) / f64::from(to) - 1.0);
        if predicted > p.budget * p.target {
            return None;
        }
        if to == 1 {
            self.wanted.remove(&name);
            self.throttled.pop();
        } else {
            self.wanted.insert(name.clone(), to);
        }
        Some(Decision {
            probe: name,
            action: Action::Relax,
            from,
            to,
            overhead_ratio: total,
        })
    }

    /// The divisor in force as the controller knows it (a restarted probe reports 1 until the
    /// sampler re-applies the wanted value).
    fn current(&self, probe: &ProbeLoad, reported: u32) -> u32 {
        self.wanted
            .get(&probe.name)
            .copied()
            .unwrap_or(reported)
            .max(1)
    }
}

#[cfg(test)]
mod tests;
