//! The adaptive-sampling actor. Every `sampler.interval_ms` it measures the agent's overhead —
//! its own CPU time (all threads) plus the run time of every BPF program its probes loaded
//! (bpf_stats) — as a fraction of the host's CPU capacity, exports it, and asks the
//! [`law::Controller`] which probes to throttle or relax. Decisions go to the probe actors as
//! typed `ProbeMsg::SetSampling`; every probe built on the shared probe actor answers `Cost` and
//! `SetSampling`, and a BPF probe is throttleable as soon as its object declares
//! `HUATUO_SAMPLING_KNOB`. The config is re-read every round, so `ctl set sampler.*` is live.

mod config;
pub mod law;
pub mod measure;

pub use config::SamplerConfig;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::core::part::{spawn_linked, PartEntry};
use crate::core::status::{ChildState, DecisionRecord, OverheadStatus, ProbeOverhead};
use crate::core::{AgentContext, SupervisorMsg};
use crate::core::{ProbeCost, ProbeMsg};
use crate::exposition::MetricSet;
use law::{ControlParams, Controller, ProbeLoad};

/// Name of the sampler's metric set in the store.
const METRICS: &str = "sampler";
/// Decisions kept for `ctl status`.
const DECISION_LOG: usize = 16;
/// How long a round waits for one probe's cost before leaving it out.
const COST_TIMEOUT: Duration = Duration::from_secs(1);
/// Start-up (loading BTF and BPF objects) costs a burst of CPU that says nothing about the
/// steady overhead: the first window opens once no part is still starting. A part stuck
/// starting longer than this does not keep the sampler off for good.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);

pub enum SamplerMsg {
    Round,
}

/// Cumulative readings of one round; deltas between two rounds make the ratios.
struct Reading {
    at: Instant,
    agent_cpu: Duration,
    /// Per probe: BPF run time and tick time (cumulative since the probe actor started).
    probes: BTreeMap<String, (Duration, Duration)>,
}

pub struct SamplerState {
    ctx: Arc<AgentContext>,
    supervisor: ActorRef<SupervisorMsg>,
    controller: Option<Controller>,
    previous: Option<Reading>,
    interval_ms: u64,
    ticker: Option<JoinHandle<()>>,
    decisions: VecDeque<DecisionRecord>,
    /// Set once every part has settled: what starting cost, outside every overhead window.
    startup: Option<StartupCost>,
}

/// The agent's start-up, measured when the last part stopped `starting`.
#[derive(Debug, Clone, Copy)]
struct StartupCost {
    wall: Duration,
    cpu: Duration,
}

pub struct SamplerActor;

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service("sampler", |part| {
        let state = SamplerState {
            ctx: part.ctx,
            supervisor: part.supervisor,
            controller: None,
            previous: None,
            interval_ms: part.config.section::<SamplerConfig>().interval_ms,
            ticker: None,
            decisions: VecDeque::new(),
            startup: None,
        };
        spawn_linked(part.parent, SamplerActor, state)
    })
    .with_section::<SamplerConfig>()
}

fn params(config: &SamplerConfig) -> ControlParams {
    ControlParams {
        budget: config.budget_ratio,
        target: config.target_fraction,
        relax_below: config.relax_below_fraction,
        relax_after: config.relax_after_rounds,
        throttle_after: config.throttle_after_rounds,
        max_divisor: config.max_divisor,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Actor for SamplerActor {
    type Msg = SamplerMsg;
    type State = SamplerState;
    type Arguments = SamplerState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let period = Duration::from_millis(state.interval_ms);
        state.ticker = Some(myself.send_interval(period, || SamplerMsg::Round));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        state.ctx.store.remove(METRICS);
        state.ctx.status.set_overhead(None);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SamplerMsg::Round => round(&myself, state).await,
        }
        Ok(())
    }
}

/// Running probe actors and their cumulative costs (a probe that does not answer in time is
/// left out of this round).
async fn probe_costs(state: &SamplerState) -> Vec<(String, ActorRef<ProbeMsg>, ProbeCost)> {
    let probes = match ractor::call!(state.supervisor, SupervisorMsg::RunningProbes) {
        Ok(probes) => probes,
        Err(_) => return Vec::new(),
    };
    let mut costs = Vec::with_capacity(probes.len());
    for (name, actor) in probes {
        if let Ok(ractor::rpc::CallResult::Success(cost)) =
            actor.call(ProbeMsg::Cost, Some(COST_TIMEOUT)).await
        {
            costs.push((name, actor, cost));
        }
    }
    costs
}

async fn round(myself: &ActorRef<SamplerMsg>, state: &mut SamplerState) {
    let Ok(config) = ractor::call!(state.supervisor, SupervisorMsg::CurrentConfig) else {
        return;
    };
    let settings = (*config.section::<SamplerConfig>()).clone();
    if settings.interval_ms != state.interval_ms {
        state.interval_ms = settings.interval_ms;
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        let period = Duration::from_millis(settings.interval_ms);
        state.ticker = Some(myself.send_interval(period, || SamplerMsg::Round));
    }
    let costs = probe_costs(state).await;
    if !settings.enabled {
        // Off: give every probe its full rate back and stop exporting.
        for (_, actor, cost) in &costs {
            if cost.sampling_divisor.is_some_and(|d| d > 1) {
                let _ = actor.cast(ProbeMsg::SetSampling(1));
            }
        }
        state.controller = None;
        state.previous = None;
        state.ctx.store.remove(METRICS);
        state.ctx.status.set_overhead(None);
        return;
    }
    let Some(startup) = settled_startup(state) else {
        return;
    };
    let started = Instant::now();
    let reading = Reading {
        at: started,
        agent_cpu: measure::agent_cpu_time(),
        probes: costs
            .iter()
            .map(|(name, _, cost)| {
                let bpf = cost.programs.iter().map(|p| p.run_time).sum::<Duration>()
                    + cost.capture_bpf_time;
                (name.clone(), (bpf, cost.collect_time))
            })
            .collect(),
    };
    let Some(previous) = state.previous.replace(reading) else {
        return;
    };
    let Some(reading) = state.previous.as_ref() else {
        return;
    };
    let elapsed = reading.at.duration_since(previous.at);
    let cpus = measure::online_cpus();
    let ratio = |d: Duration| measure::ratio(d, elapsed, cpus);
    let delta = |name: &str| -> (Duration, Duration) {
        let now = reading.probes.get(name).copied().unwrap_or_default();
        let before = previous.probes.get(name).copied().unwrap_or_default();
        // A restarted probe starts from zero: its first round counts from there.
        let since = |n: Duration, b: Duration| if n >= b { n - b } else { n };
        (since(now.0, before.0), since(now.1, before.1))
    };
    let agent_cpu = reading.agent_cpu.saturating_sub(previous.agent_cpu);
    let bpf_total: Duration = reading.probes.keys().map(|name| delta(name).0).sum();
    let total = ratio(agent_cpu + bpf_total);
    let loads: Vec<ProbeLoad> = costs
        .iter()
        .map(|(name, _, cost)| {
            let (bpf, ticks) = delta(name);
            ProbeLoad {
                name: name.clone(),
                ratio: ratio(bpf + ticks),
                divisor: cost.sampling_divisor,
            }
        })
        .collect();

    let params = params(&settings);
    let controller = state
        .controller
        .get_or_insert_with(|| Controller::new(params.clone()));
    if controller.params() != &params {
        controller.set_params(params);
    }
    // A probe that (re)started this round cost a load burst its counters do not show: measure,
    // but decide nothing until a clean round.
    let restarted = reading.probes.len() != previous.probes.len()
        || reading.probes.iter().any(|(name, now)| {
            previous
                .probes
                .get(name)
                .is_none_or(|before| now.0 < before.0 || now.1 < before.1)
        });
    let decisions = if restarted {
        Vec::new()
    } else {
        controller.step(total, &loads)
    };
    for decision in &decisions {
        tracing::info!(
            probe = %decision.probe,
            action = ?decision.action,
            from = decision.from,
            to = decision.to,
            overhead_ratio = decision.overhead_ratio,
            budget_ratio = settings.budget_ratio,
            "adaptive sampling"
        );
        metrics::counter!(
            "huatuo_bamai_sampler_decisions_total",
            "probe" => decision.probe.clone(),
            "action" => match decision.action {
                law::Action::Throttle => "throttle",
                law::Action::Relax => "relax",
            }
        )
        .increment(1);
        state.decisions.push_back(DecisionRecord {
            at: unix_now(),
            decision: decision.clone(),
        });
        while state.decisions.len() > DECISION_LOG {
            state.decisions.pop_front();
        }
    }
    // Apply what the controller wants, also to probes that restarted at full rate.
    let mut probes = Vec::with_capacity(costs.len());
    for ((name, actor, cost), load) in costs.iter().zip(&loads) {
        let wanted = controller.wanted(name);
        let divisor = match cost.sampling_divisor {
            Some(current) if current != wanted => {
                let _ = actor.cast(ProbeMsg::SetSampling(wanted));
                Some(wanted)
            }
            other => other,
        };
        probes.push(ProbeOverhead {
            probe: name.clone(),
            overhead_ratio: load.ratio,
            sampling_divisor: divisor,
        });
    }
    let status = OverheadStatus {
        budget_ratio: settings.budget_ratio,
        overhead_ratio: total,
        agent_cpu_ratio: ratio(agent_cpu),
        bpf_ratio: ratio(bpf_total),
        bpf_stats: config.agent.bpf_stats,
        probes,
        decisions: state.decisions.iter().cloned().collect(),
    };
    state
        .ctx
        .store
        .publish(METRICS, metric_set(&status, startup), started.elapsed());
    state.ctx.status.set_overhead(Some(status));
}

/// The start-up cost once no part is `starting` any more (or `STARTUP_LIMIT` passed); `None`
/// while the agent is still starting. The round that finds it settled opens the first window.
fn settled_startup(state: &mut SamplerState) -> Option<StartupCost> {
    if let Some(startup) = state.startup {
        return Some(startup);
    }
    let wall = state.ctx.started.elapsed();
    let starting: Vec<String> = state
        .ctx
        .status
        .status()
        .actors
        .into_iter()
        .filter(|a| a.state == ChildState::Starting)
        .map(|a| a.name)
        .collect();
    if !starting.is_empty() && wall < STARTUP_LIMIT {
        return None;
    }
    if !starting.is_empty() {
        tracing::warn!(
            parts = %starting.join(", "),
            "still starting after {}s; the sampler measures from now",
            STARTUP_LIMIT.as_secs()
        );
    }
    let startup = StartupCost {
        wall,
        cpu: measure::agent_cpu_time(),
    };
    tracing::info!(
        seconds = startup.wall.as_secs_f64(),
        cpu_seconds = startup.cpu.as_secs_f64(),
        "start-up done; overhead is measured from here"
    );
    state.startup = Some(startup);
    state.previous = None;
    Some(startup)
}

fn metric_set(status: &OverheadStatus, startup: StartupCost) -> MetricSet {
    let mut out = MetricSet::default();
    out.gauge(
        "huatuo_bamai_startup_seconds",
        "Wall time from the agent's start until no part was starting any more.",
    )
    .push(Vec::new(), startup.wall.as_secs_f64());
    out.gauge(
        "huatuo_bamai_startup_cpu_seconds",
        "CPU time (all threads) the agent spent until start-up was done; outside every overhead window.",
    )
    .push(Vec::new(), startup.cpu.as_secs_f64());
    out.gauge(
        "huatuo_bamai_overhead_ratio",
        "Agent overhead over the last sampler round: agent CPU time plus BPF program run time, as a fraction of host CPU.",
    )
    .push(Vec::new(), status.overhead_ratio);
    out.gauge(
        "huatuo_bamai_overhead_budget_ratio",
        "Overhead budget the sampler holds (sampler.budget_ratio).",
    )
    .push(Vec::new(), status.budget_ratio);
    let parts = out.gauge(
        "huatuo_bamai_overhead_part_ratio",
        "The overhead split into the agent process's CPU time (part=agent_cpu) and BPF run time (part=bpf).",
    );
    parts.push(vec![("part", "agent_cpu".into())], status.agent_cpu_ratio);
    parts.push(vec![("part", "bpf".into())], status.bpf_ratio);
    let per_probe = out.gauge(
        "huatuo_bamai_probe_overhead_ratio",
        "A probe's overhead over the last sampler round: its BPF run time plus its actor's tick time, as a fraction of host CPU.",
    );
    for probe in &status.probes {
        per_probe.push(vec![("probe", probe.probe.clone())], probe.overhead_ratio);
    }
    let divisors = out.gauge(
        "huatuo_bamai_probe_sampling_divisor",
        "Adaptive sampling of a throttleable probe: 1 event in N is kept (and counted N times). 1 = every event.",
    );
    for probe in &status.probes {
        if let Some(divisor) = probe.sampling_divisor {
            divisors.push(vec![("probe", probe.probe.clone())], f64::from(divisor));
        }
    }
    out
}
