//! The shared probe actor: wraps any [`Probe`] with start-up (attach on a blocking thread),
//! periodic `Tick` (collect + BPF link check + cost export), status and cost replies. A probe
//! whose kernel feature is missing stays alive as `inactive` and never ticks.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::config::{Config, SectionSpec};
use crate::core::part::{PartArgs, PartEntry, Spawned};
use crate::core::probe::{Probe, ProbeContext, ProbeError, ProbeSettings};
use crate::core::status::PartKind;
use crate::core::{ProbeCost, ProbeMsg, ProbeReport, SupervisorMsg};
use crate::ebpf::ProgramCost;
use crate::exposition::{MetricSet, MetricStore};

/// The registry entry of a probe: `[probes.<NAME>]` is its section, `enabled` its switch.
pub fn part<P: Probe>() -> PartEntry {
    PartEntry {
        name: P::NAME,
        kind: PartKind::Probe,
        roles: P::ROLES,
        essential: false,
        section: Some(SectionSpec::of::<P::Settings>()),
        enabled: |config: &Config| config.section::<P::Settings>().enabled(),
        spawn: |args: PartArgs| {
            let probe_args = ProbeArgs::<P> {
                settings: (*args.config.section::<P::Settings>()).clone(),
                ctx: args.ctx.probe_context(&args.config),
                store: args.ctx.store.clone(),
                supervisor: args.supervisor,
            };
            Box::pin(async move {
                let (actor, _join) =
                    Actor::spawn_linked(None, ProbeActor::<P>::default(), probe_args, args.parent)
                        .await?;
                Ok(Spawned {
                    cell: actor.get_cell(),
                    probe: Some(actor),
                })
            })
        },
    }
}

pub struct ProbeArgs<P: Probe> {
    pub settings: P::Settings,
    pub ctx: ProbeContext,
    /// Where collected sets are published for `/metrics`.
    pub store: Arc<MetricStore>,
    pub supervisor: ActorRef<SupervisorMsg>,
}

pub struct ProbeRuntime<P: Probe> {
    probe: Option<P>,
    inactive_reason: Option<String>,
    settings: P::Settings,
    ctx: ProbeContext,
    store: Arc<MetricStore>,
    supervisor: ActorRef<SupervisorMsg>,
    ticker: Option<JoinHandle<()>>,
    /// Drives the duty cycle while one is in force.
    duty_timer: Option<JoinHandle<()>>,
    last_error_log: Option<Instant>,
    collect_time: std::time::Duration,
}

pub struct ProbeActor<P: Probe>(PhantomData<fn() -> P>);

impl<P: Probe> Default for ProbeActor<P> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<P: Probe> ProbeRuntime<P> {
    fn report(&self, myself: &ActorRef<ProbeMsg>, report: ProbeReport) {
        let _ = self.supervisor.cast(SupervisorMsg::ProbeReport {
            actor: myself.get_id(),
            report,
        });
    }

    fn cost(&mut self) -> ProbeCost {
        let Some(probe) = self.probe.as_mut() else {
            return ProbeCost::default();
        };
        ProbeCost {
            programs: probe.programs().map(|set| set.costs()).unwrap_or_default(),
            collect_time: self.collect_time,
            capture_bpf_time: probe.capture_bpf_time(),
            sampling_divisor: probe.sampling_divisor(),
        }
    }

    fn set_sampling(&mut self, myself: &ActorRef<ProbeMsg>, divisor: u32) {
        let Some(probe) = self.probe.as_mut() else {
            return;
        };
        let before = probe.sampling_divisor();
        if before.is_none() || before == Some(divisor) {
            return;
        }
        match probe.set_sampling_divisor(divisor) {
            Ok(()) => tracing::info!(
                probe = P::NAME,
                from = before,
                to = divisor,
                "sampling divisor set"
            ),
            Err(e) => {
                tracing::warn!(probe = P::NAME, error = %e, "cannot set the sampling divisor")
            }
        }
        // A duty cycle (past 1-in-1024) runs on its own slots, finer than the probe's tick.
        let duty = probe.programs().map_or(1, |set| set.duty());
        if let Some(timer) = self.duty_timer.take() {
            timer.abort();
        }
        if duty > 1 {
            let slot = crate::ebpf::duty_slot(duty);
            self.duty_timer = Some(myself.send_interval(slot, || ProbeMsg::DutySlot));
        }
    }

    /// One duty-cycle slot; a failed re-attach fails the actor (the supervisor restarts it).
    fn duty_slot(&mut self) -> Result<(), ProbeError> {
        if let Some(programs) = self.probe.as_mut().and_then(|p| p.programs()) {
            programs.duty_cycle_tick()?;
        }
        Ok(())
    }
}

impl<P: Probe> Actor for ProbeActor<P> {
    type Msg = ProbeMsg;
    type State = ProbeRuntime<P>;
    type Arguments = ProbeArgs<P>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Attaching happens in post_start so spawning never blocks the supervisor.
        Ok(ProbeRuntime {
            probe: None,
            inactive_reason: None,
            settings: args.settings,
            ctx: args.ctx,
            store: args.store,
            supervisor: args.supervisor,
            ticker: None,
            duty_timer: None,
            last_error_log: None,
            collect_time: std::time::Duration::ZERO,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let settings = state.settings.clone();
        let ctx = state.ctx.clone();
        // Loading BPF parses BTF and runs the verifier: keep it off the async workers.
        match tokio::task::spawn_blocking(move || P::start(&settings, &ctx)).await? {
            Ok(probe) => {
                state.probe = Some(probe);
                state.report(&myself, ProbeReport::Running);
                let period = state.settings.interval();
                state.ticker = Some(myself.send_interval(period, || ProbeMsg::Tick));
                let _ = myself.cast(ProbeMsg::Tick);
            }
            Err(e) if e.is_unsupported() => {
                tracing::warn!(probe = P::NAME, reason = %e, "probe inactive");
                state.inactive_reason = Some(e.to_string());
                state.report(&myself, ProbeReport::Inactive(e.to_string()));
            }
            // The supervisor sees the failure and restarts this actor with backoff.
            Err(e) => return Err(Box::new(e)),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for timer in [state.ticker.take(), state.duty_timer.take()]
            .into_iter()
            .flatten()
        {
            timer.abort();
        }
        // A stopped probe's series go with it.
        state.store.remove(P::NAME);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMsg::Tick => on_tick(&myself, state)?,
            ProbeMsg::Cost(reply) => {
                let _ = reply.send(state.cost());
            }
            ProbeMsg::SetSampling(divisor) => state.set_sampling(&myself, divisor),
            ProbeMsg::DutySlot => state.duty_slot()?,
        }
        Ok(())
    }
}

/// The probe's own BPF cost (bpf_stats): the input of the adaptive sampler, exported for users.
fn add_program_costs(out: &mut MetricSet, probe: &'static str, costs: &[ProgramCost]) {
    if costs.is_empty() {
        return;
    }
    let labels = |cost: &ProgramCost| {
        vec![
            ("probe", probe.to_string()),
            ("program", cost.program.clone()),
        ]
    };
    let seconds = out.counter(
        "huatuo_bamai_bpf_prog_run_seconds_total",
        "Run time of the probe's BPF program in the kernel (bpf_stats; 0 while stats are off).",
    );
    for cost in costs {
        seconds.push(labels(cost), cost.run_time.as_secs_f64());
    }
    let runs = out.counter(
        "huatuo_bamai_bpf_prog_run_count_total",
        "Runs of the probe's BPF program (bpf_stats; 0 while stats are off).",
    );
    for cost in costs {
        runs.push(labels(cost), cost.run_count as f64);
    }
}

/// On-demand captures' programs are gone after their window: their run time, summed as each
/// ends, is one `program="captures"` row of the same family.
fn add_capture_cost(out: &mut MetricSet, probe: &'static str, run_time: Duration) {
    if run_time.is_zero() {
        return;
    }
    out.counter(
        "huatuo_bamai_bpf_prog_run_seconds_total",
        "Run time of the probe's BPF program in the kernel (bpf_stats; 0 while stats are off).",
    )
    .push(
        vec![
            ("probe", probe.to_string()),
            ("program", "captures".to_string()),
        ],
        run_time.as_secs_f64(),
    );
}

fn on_tick<P: Probe>(
    myself: &ActorRef<ProbeMsg>,
    state: &mut ProbeRuntime<P>,
) -> Result<(), ProbeError> {
    let tick_started = Instant::now();
    let result = tick(myself, state);
    state.collect_time += tick_started.elapsed();
    result
}

fn tick<P: Probe>(
    myself: &ActorRef<ProbeMsg>,
    state: &mut ProbeRuntime<P>,
) -> Result<(), ProbeError> {
    let Some(probe) = state.probe.as_mut() else {
        return Ok(());
    };
    // A link detached from outside is re-attached; if that fails the actor fails and the
    // supervisor restarts it with a fresh load.
    if let Some(programs) = probe.programs() {
        let reattached = programs.reattach_lost_links()?;
        if !reattached.is_empty() {
            tracing::warn!(probe = P::NAME, programs = ?reattached, "BPF link was detached from outside; re-attached");
            metrics::counter!("huatuo_bamai_bpf_link_reattached_total", "probe" => P::NAME)
                .increment(reattached.len() as u64);
            let programs = reattached.iter().map(|p| p.to_string()).collect();
            state.report(myself, ProbeReport::Reattached(programs));
        }
    }
    let Some(probe) = state.probe.as_mut() else {
        return Ok(());
    };
    let started = Instant::now();
    let mut out = MetricSet::default();
    let result = probe.collect(&mut out);
    if let Some(programs) = probe.programs() {
        add_program_costs(&mut out, P::NAME, &programs.costs());
    }
    add_capture_cost(&mut out, P::NAME, probe.capture_bpf_time());
    let store = state.store.clone();
    match &result {
        Ok(()) => store.publish(P::NAME, out, started.elapsed()),
        Err(_) => store.mark_failed(P::NAME, started.elapsed()),
    }
    if let Err(e) = result {
        // Bad input (a malformed file) costs this tick only; the probe keeps its state.
        metrics::counter!("huatuo_bamai_collect_errors_total", "probe" => P::NAME).increment(1);
        let quiet = state
            .last_error_log
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(60));
        if !quiet {
            tracing::error!(probe = P::NAME, error = %e, "collect failed");
            state.last_error_log = Some(Instant::now());
        }
    }
    Ok(())
}
