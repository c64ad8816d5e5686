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
mod tests {
    use super::*;

    /// A synthetic host: each probe costs `base / divisor + floor` of host CPU.
    struct Model {
        probes: Vec<(String, f64, f64)>,
        fixed: f64,
    }

    impl Model {
        fn round(&self, controller: &Controller) -> (f64, Vec<ProbeLoad>) {
            let loads: Vec<ProbeLoad> = self
                .probes
                .iter()
                .map(|(name, base, floor)| ProbeLoad {
                    name: name.clone(),
                    ratio: base / f64::from(controller.wanted(name)) + floor,
                    divisor: Some(controller.wanted(name)),
                })
                .collect();
            let total = self.fixed + loads.iter().map(|l| l.ratio).sum::<f64>();
            (total, loads)
        }
    }

    fn run(model: &Model, controller: &mut Controller, rounds: usize) -> Vec<(f64, Vec<Decision>)> {
        (0..rounds)
            .map(|_| {
                let (total, loads) = model.round(controller);
                (total, controller.step(total, &loads))
            })
            .collect()
    }

    fn storm() -> Model {
        Model {
            probes: vec![
                ("dropwatch".into(), 0.08, 0.0005),
                ("runqlat".into(), 0.002, 0.0),
                ("softirq".into(), 0.001, 0.0),
            ],
            fixed: 0.001,
        }
    }

    #[test]
    fn over_budget_throttles_the_most_expensive_probe_first() {
        let mut controller = Controller::new(ControlParams::default());
        let (total, loads) = storm().round(&controller);
        // The first round over budget may be a burst: wait for the second.
        assert!(controller.step(total, &loads).is_empty());
        let decisions = controller.step(total, &loads);
        assert_eq!(decisions[0].probe, "dropwatch");
        assert_eq!(decisions[0].action, Action::Throttle);
        assert_eq!(decisions[0].to, 16, "{decisions:?}");
    }

    #[test]
    fn storm_is_brought_under_budget_within_a_few_rounds_and_stays() {
        let model = storm();
        let mut controller = Controller::new(ControlParams::default());
        let history = run(&model, &mut controller, 60);
        let first_under = history
            .iter()
            .position(|(total, _)| *total <= 0.01)
            .expect("never under budget");
        // One round to confirm the overload, then at most ×16 per round.
        assert!(first_under <= 4, "took {first_under} rounds");
        assert!(history[first_under..]
            .iter()
            .all(|(total, _)| *total <= 0.01));
    }

    #[test]
    fn no_oscillation_under_a_constant_load() {
        let model = storm();
        let mut controller = Controller::new(ControlParams::default());
        let history = run(&model, &mut controller, 200);
        let actions: Vec<Action> = history
            .iter()
            .flat_map(|(_, d)| d.iter().map(|d| d.action))
            .collect();
        let flips = actions.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(flips <= 2, "actions flip-flopped: {actions:?}");
        // And the last 100 rounds decide nothing at all: a fixed point.
        assert!(history[100..].iter().all(|(_, d)| d.is_empty()));
    }

    #[test]
    fn relaxes_step_by_step_when_the_load_goes_away() {
        let mut model = storm();
        let mut controller = Controller::new(ControlParams::default());
        run(&model, &mut controller, 10);
        let throttled = controller.wanted("dropwatch");
        assert!(throttled > 1);
        // The storm stops: dropwatch's unsampled cost falls to almost nothing.
        model.probes[0].1 = 0.0001;
        let history = run(&model, &mut controller, 200);
        let relax_steps: Vec<&Decision> = history
            .iter()
            .flat_map(|(_, d)| d.iter())
            .filter(|d| d.action == Action::Relax)
            .collect();
        assert!(relax_steps.len() >= 2, "{relax_steps:?}");
        assert!(relax_steps.iter().all(|d| d.to == (d.from / 2).max(1)));
        assert_eq!(controller.wanted("dropwatch"), 1);
        // Never two relax steps closer than `relax_after` rounds.
        let rounds: Vec<usize> = history
            .iter()
            .enumerate()
            .filter(|(_, (_, d))| d.iter().any(|d| d.action == Action::Relax))
            .map(|(i, _)| i)
            .collect();
        assert!(rounds.windows(2).all(|w| w[1] - w[0] >= 3), "{rounds:?}");
    }

    #[test]
    fn divisors_stay_between_floor_and_ceiling() {
        // A probe whose cost does not shrink with sampling (fixed floor over budget).
        let model = Model {
            probes: vec![("stubborn".into(), 0.5, 0.02)],
            fixed: 0.0,
        };
        let mut controller = Controller::new(ControlParams {
            max_divisor: 64,
            throttle_after: 1,
            ..ControlParams::default()
        });
        let history = run(&model, &mut controller, 50);
        assert_eq!(controller.wanted("stubborn"), 64);
        assert!(history
            .iter()
            .flat_map(|(_, d)| d.iter())
            .all(|d| d.to <= 64 && d.to >= 1));
        // At the ceiling there is nothing left to do: no more decisions.
        assert!(history[10..].iter().all(|(_, d)| d.is_empty()));
    }

    #[test]
    fn negligible_probes_are_not_sampled_for_an_excess_they_do_not_cause() {
        let mut controller = Controller::new(ControlParams::default());
        let loads = vec![ProbeLoad {
            name: "softirq".into(),
            ratio: 0.0001,
            divisor: Some(1),
        }];
        // 3 % overhead, but almost none of it is softirq's.
        assert!(controller.step(0.03, &loads).is_empty());
        assert_eq!(controller.wanted("softirq"), 1);
    }

    #[test]
    fn overhead_that_sampling_cannot_fix_throttles_nothing() {
        let mut controller = Controller::new(ControlParams::default());
        let loads = vec![ProbeLoad {
            name: "runqlat".into(),
            ratio: 0.002,
            divisor: Some(1),
        }];
        // 3 % overhead of which only 0.2 % is runqlat's: even at zero it stays over 0.8 %.
        for _ in 0..5 {
            assert!(controller.step(0.03, &loads).is_empty());
        }
    }

    #[test]
    fn a_single_round_burst_is_ignored() {
        let mut controller = Controller::new(ControlParams::default());
        let loads = |ratio| {
            vec![ProbeLoad {
                name: "dropwatch".into(),
                ratio,
                divisor: Some(1),
            }]
        };
        for _ in 0..5 {
            assert!(controller.step(0.05, &loads(0.049)).is_empty());
            assert!(controller.step(0.002, &loads(0.001)).is_empty());
        }
    }

    #[test]
    fn probes_without_a_knob_are_never_touched() {
        let mut controller = Controller::new(ControlParams::default());
        let loads = vec![ProbeLoad {
            name: "cpu_util".into(),
            ratio: 0.5,
            divisor: None,
        }];
        assert!(controller.step(0.5, &loads).is_empty());
        assert_eq!(controller.wanted("cpu_util"), 1);
    }

    #[test]
    fn relax_that_would_overshoot_the_target_waits() {
        let mut controller = Controller::new(ControlParams::default());
        let loads = |divisor| {
            vec![ProbeLoad {
                name: "runqlat".into(),
                ratio: 0.02 / f64::from(divisor),
                divisor: Some(divisor),
            }]
        };
        // 0.02 → throttled to a divisor whose cost is under target.
        assert!(controller.step(0.02, &loads(1)).is_empty());
        let decisions = controller.step(0.02, &loads(1));
        let divisor = decisions[0].to;
        // Calm at 0.45 × budget but halving would double the cost over the target: hold.
        let calm = 0.0045;
        let loads = vec![ProbeLoad {
            name: "runqlat".into(),
            ratio: 0.0045,
            divisor: Some(divisor),
        }];
        for _ in 0..10 {
            assert!(controller.step(calm, &loads).is_empty());
        }
        assert_eq!(controller.wanted("runqlat"), divisor);
    }
}
