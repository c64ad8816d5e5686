//! The root supervisor: owns the actor tree, starts every enabled child, restarts a failed child
//! alone with exponential backoff (marking it `failed` after too many restarts in a window), keeps
//! `inactive` probes out of restart loops, and applies live configuration by restarting only the
//! actors whose section changed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::Serialize;

use crate::actors::probe::ProbeMsg;
use crate::actors::services::{self, ServiceEntry};
use crate::config::{Config, ConfigSource};
use crate::containers::{CgroupLayout, ContainerSet};
use crate::exposition::MetricStore;
use crate::probes::ProbeContext;
use crate::probes::{self, ProbeEntry};

/// Shared, read-only context every child may need.
pub struct AgentContext {
    pub source: ConfigSource,
    pub prometheus: PrometheusHandle,
    /// Collected metric sets of every probe, rendered by `/metrics`.
    pub store: Arc<MetricStore>,
    /// Publisher of the container set (kept here so it outlives discovery restarts).
    pub containers_tx: tokio::sync::watch::Sender<Arc<ContainerSet>>,
    /// The event bus: event probes publish, sinks subscribe.
    pub events: crate::events::EventSender,
    /// The open event store, for queries (`GET /v1/events`). The `event_store` actor owns the
    /// database, puts it here once open and takes it out when it stops; empty meanwhile.
    pub event_store: crate::events::store::StoreSlot,
    /// The sampler's latest overhead view (for `ctl status`); empty until its second round.
    pub overhead: crate::actors::sampler::OverheadSlot,
    pub started: Instant,
}

impl AgentContext {
    pub fn new(source: ConfigSource, prometheus: PrometheusHandle, config: &Config) -> Self {
        let (containers_tx, _) = crate::containers::channel();
        Self {
            source,
            prometheus,
            store: Arc::new(MetricStore::new(
                config.metrics.max_series_per_family,
                crate::telemetry::global_labels(config),
            )),
            containers_tx,
            events: crate::events::EventSender::new(),
            event_store: Default::default(),
            overhead: Default::default(),
            started: Instant::now(),
        }
    }

    /// What a probe may read: roots, cgroup layout, the live container set.
    pub fn probe_context(&self, config: &Config) -> ProbeContext {
        ProbeContext {
            procfs_root: config.agent.procfs_root.clone(),
            sysfs_root: config.agent.sysfs_root.clone(),
            cgroup: CgroupLayout::detect(&config.agent.sysfs_root),
            containers: self.containers_tx.subscribe(),
            events: self.events.clone(),
            hostname: crate::telemetry::hostname(config),
            region: config.agent.region.clone(),
        }
    }
}

/// What a probe actor tells its supervisor about itself.
#[derive(Debug, Clone)]
pub enum ProbeReport {
    Running,
    Inactive(String),
    Reattached(Vec<String>),
}

pub enum SupervisorMsg {
    ProbeReport {
        actor: ActorId,
        report: ProbeReport,
    },
    /// A backoff timer expired; `generation` guards against stale timers.
    RestartDue {
        name: String,
        generation: u64,
    },
    Status(RpcReplyPort<AgentStatus>),
    /// Probe actors that are running now (the sampler asks for their costs).
    RunningProbes(RpcReplyPort<Vec<(String, ActorCell)>>),
    CurrentConfig(RpcReplyPort<Config>),
    /// Apply a validated config; replies with the list of actions taken.
    ApplyConfig(Box<Config>, RpcReplyPort<Result<Vec<String>, String>>),
    /// Fault injection and operations: kill a child as if it crashed.
    Kill(String, RpcReplyPort<Result<(), String>>),
    /// Start a `failed` child again with a fresh restart budget (services; probes go through
    /// `ApplyConfig`).
    Retry(String, RpcReplyPort<Result<String, String>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildKind {
    Service,
    Probe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    Starting,
    Running,
    Inactive,
    Restarting,
    Failed,
    Disabled,
}

impl ChildState {
    pub const ALL: [ChildState; 6] = [
        ChildState::Starting,
        ChildState::Running,
        ChildState::Inactive,
        ChildState::Restarting,
        ChildState::Failed,
        ChildState::Disabled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Inactive => "inactive",
            ChildState::Restarting => "restarting",
            ChildState::Failed => "failed",
            ChildState::Disabled => "disabled",
        }
    }
}

/// One row of `ctl status` and `/tracers`.
#[derive(Debug, Clone, Serialize)]
pub struct ActorStatus {
    pub name: String,
    pub kind: ChildKind,
    pub state: ChildState,
    /// Why the actor is inactive or failed.
    pub reason: Option<String>,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub uptime_secs: Option<u64>,
    /// Adaptive sampling of a throttleable probe: 1 event in N is kept.
    pub sampling_divisor: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub version: &'static str,
    pub uptime_secs: u64,
    pub ready: bool,
    pub actors: Vec<ActorStatus>,
    /// The sampler's overhead view; `None` while the sampler is off or warming up.
    pub overhead: Option<crate::actors::sampler::OverheadStatus>,
}

enum ChildSpec {
    Service(ServiceEntry),
    Probe(ProbeEntry),
}

struct Child {
    spec: ChildSpec,
    actor: Option<ActorCell>,
    state: ChildState,
    reason: Option<String>,
    restarts: u64,
    recent_restarts: VecDeque<Instant>,
    next_backoff: Duration,
    last_error: Option<String>,
    started_at: Option<Instant>,
    generation: u64,
}

impl Child {
    fn kind(&self) -> ChildKind {
        match self.spec {
            ChildSpec::Service(_) => ChildKind::Service,
            ChildSpec::Probe(_) => ChildKind::Probe,
        }
    }
}

pub struct SupervisorState {
    config: Config,
    ctx: Arc<AgentContext>,
    children: BTreeMap<String, Child>,
    /// Registry order: services first, then probes; children start in this order.
    order: Vec<String>,
}

pub struct AgentSupervisor;

pub struct SupervisorArgs {
    pub config: Config,
    pub ctx: Arc<AgentContext>,
    pub services: Vec<ServiceEntry>,
    pub probes: Vec<ProbeEntry>,
}

impl SupervisorArgs {
    /// The production tree: every service and every registered probe.
    pub fn new(config: Config, ctx: Arc<AgentContext>) -> Self {
        Self {
            config,
            ctx,
            services: services::registry(),
            probes: probes::registry(),
        }
    }
}

impl SupervisorState {
    fn set_state(&mut self, name: &str, state: ChildState, reason: Option<String>) {
        if let Some(child) = self.children.get_mut(name) {
            if child.state != state {
                tracing::info!(
                    actor = name,
                    state = state.as_str(),
                    reason = reason.as_deref().unwrap_or(""),
                    "actor state"
                );
            }
            child.state = state.clone();
            child.reason = reason;
        }
    }

    fn names_of(&self, kind: ChildKind) -> Vec<String> {
        self.order
            .iter()
            .filter(|name| self.children.get(*name).is_some_and(|c| c.kind() == kind))
            .cloned()
            .collect()
    }

    fn probe_enabled(&self, name: &str, config: &Config) -> bool {
        match self.children.get(name).map(|c| &c.spec) {
            Some(ChildSpec::Probe(entry)) => (entry.enabled)(config),
            _ => false,
        }
    }

    fn probe_section(&self, name: &str, config: &Config) -> serde_json::Value {
        match self.children.get(name).map(|c| &c.spec) {
            Some(ChildSpec::Probe(entry)) => (entry.section)(config),
            _ => serde_json::Value::Null,
        }
    }

    fn name_of(&self, id: ActorId) -> Option<String> {
        self.children
            .iter()
            .find(|(_, c)| c.actor.as_ref().is_some_and(|a| a.get_id() == id))
            .map(|(name, _)| name.clone())
    }

    fn is_ready(&self) -> bool {
        self.children.values().all(|c| match c.kind() {
            ChildKind::Service => c.state == ChildState::Running,
            ChildKind::Probe => matches!(
                c.state,
                ChildState::Running | ChildState::Inactive | ChildState::Disabled
            ),
        })
    }

    fn status(&self) -> AgentStatus {
        let overhead = self.ctx.overhead.read().ok().and_then(|slot| slot.clone());
        let divisor_of = |name: &str| {
            overhead.as_ref().and_then(|o| {
                o.probes
                    .iter()
                    .find(|p| p.probe == name)
                    .and_then(|p| p.sampling_divisor)
            })
        };
        let actors = self
            .children
            .iter()
            .map(|(name, c)| ActorStatus {
                name: name.clone(),
                kind: c.kind(),
                state: c.state.clone(),
                reason: c.reason.clone(),
                restarts: c.restarts,
                last_error: c.last_error.clone(),
                uptime_secs: match c.state {
                    ChildState::Running | ChildState::Inactive => {
                        c.started_at.map(|t| t.elapsed().as_secs())
                    }
                    _ => None,
                },
                sampling_divisor: divisor_of(name),
            })
            .collect();
        AgentStatus {
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs: self.ctx.started.elapsed().as_secs(),
            ready: self.is_ready(),
            actors,
            overhead,
        }
    }
}

/// Starts the named child; on a start failure schedules a restart (unless `fatal`).
async fn start_child(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    name: &str,
    fatal: bool,
) -> Result<(), ActorProcessingErr> {
    let Some(child) = state.children.get_mut(name) else {
        return Ok(());
    };
    child.generation += 1;
    let spawned: Result<ActorCell, String> = match &child.spec {
        ChildSpec::Service(service) => (service.spawn)(
            state.ctx.clone(),
            state.config.clone(),
            myself.clone(),
            myself.get_cell(),
        )
        .await
        .map_err(|e| e.to_string()),
        ChildSpec::Probe(probe) => (probe.spawn)(
            &state.config,
            state.ctx.probe_context(&state.config),
            state.ctx.store.clone(),
            myself.clone(),
            myself.get_cell(),
        )
        .await
        .map(|actor: ActorRef<ProbeMsg>| actor.get_cell())
        .map_err(|e| e.to_string()),
    };
    match spawned {
        Ok(actor) => {
            child.actor = Some(actor);
            child.started_at = Some(Instant::now());
            // Services are running once spawned; probes report Running/Inactive themselves.
            if child.kind() == ChildKind::Service {
                state.set_state(name, ChildState::Running, None);
            } else if child.state != ChildState::Running && child.state != ChildState::Inactive {
                state.set_state(name, ChildState::Starting, None);
            }
            Ok(())
        }
        Err(error) => {
            tracing::error!(actor = name, %error, "actor failed to start");
            if fatal {
                return Err(format!("{name}: {error}").into());
            }
            child.last_error = Some(error);
            child.actor = None;
            schedule_restart(myself, state, name);
            Ok(())
        }
    }
}

/// Books a failure and schedules the next start after the backoff, or marks the child failed.
fn schedule_restart(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, name: &str) {
    let sup = state.config.supervisor.clone();
    let Some(child) = state.children.get_mut(name) else {
        return;
    };
    let now = Instant::now();
    while child
        .recent_restarts
        .front()
        .is_some_and(|t| now.duration_since(*t) > sup.restart_window())
    {
        child.recent_restarts.pop_front();
    }
    // No failure within the window: start over with the shortest delay.
    if child.recent_restarts.is_empty() {
        child.next_backoff = sup.backoff_initial();
    }
    if child.recent_restarts.len() as u32 >= sup.max_restarts {
        let reason = format!(
            "gave up after {} restarts within {}s; `ctl enable {name}` retries",
            child.recent_restarts.len(),
            sup.restart_window_secs
        );
        tracing::error!(actor = name, %reason, "actor failed");
        state.set_state(name, ChildState::Failed, Some(reason));
        return;
    }
    let delay = child.next_backoff;
    child.next_backoff = (delay * 2).min(sup.backoff_max());
    child.recent_restarts.push_back(now);
    child.restarts += 1;
    child.generation += 1;
    let generation = child.generation;
    tracing::warn!(
        actor = name,
        delay_ms = delay.as_millis() as u64,
        "restarting actor after backoff"
    );
    state.set_state(name, ChildState::Restarting, None);
    let name = name.to_string();
    myself.send_after(delay, move || SupervisorMsg::RestartDue {
        name,
        generation,
    });
}

/// Stops a child on purpose (disable or reconfigure); its termination event is then ignored.
async fn stop_child(state: &mut SupervisorState, name: &str) {
    let Some(child) = state.children.get_mut(name) else {
        return;
    };
    child.generation += 1;
    if let Some(actor) = child.actor.take() {
        if let Err(e) = actor
            .stop_and_wait(
                Some("stopped by supervisor".into()),
                Some(Duration::from_secs(5)),
            )
            .await
        {
            tracing::warn!(actor = name, error = %e, "actor did not stop in time; killing it");
            actor.kill();
        }
    }
}

impl Actor for AgentSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let initial_backoff = args.config.supervisor.backoff_initial();
        let mut children = BTreeMap::new();
        let mut order = Vec::new();
        let specs = args
            .services
            .into_iter()
            .map(ChildSpec::Service)
            .chain(args.probes.into_iter().map(ChildSpec::Probe));
        for spec in specs {
            let name = match &spec {
                ChildSpec::Service(s) => s.name,
                ChildSpec::Probe(p) => p.name,
            };
            order.push(name.to_string());
            children.insert(
                name.to_string(),
                Child {
                    spec,
                    actor: None,
                    state: ChildState::Disabled,
                    reason: None,
                    restarts: 0,
                    recent_restarts: VecDeque::new(),
                    next_backoff: initial_backoff,
                    last_error: None,
                    started_at: None,
                    generation: 0,
                },
            );
        }
        Ok(SupervisorState {
            config: args.config,
            ctx: args.ctx,
            children,
            order,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Services first: a listener that cannot bind at start-up is fatal (clear error, exit).
        for name in state.names_of(ChildKind::Service) {
            let essential = matches!(
                state.children.get(&name).map(|c| &c.spec),
                Some(ChildSpec::Service(service)) if service.essential
            );
            start_child(&myself, state, &name, essential).await?;
        }
        for name in state.names_of(ChildKind::Probe) {
            if state.probe_enabled(&name, &state.config) {
                start_child(&myself, state, &name, false).await?;
            }
        }
        tracing::info!(version = env!("CARGO_PKG_VERSION"), "huatuo-bamai started");
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Reverse start order: probes first, then the services they feed (event store, HTTP).
        let names: Vec<String> = state.order.iter().rev().cloned().collect();
        for name in names {
            stop_child(state, &name).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::ProbeReport { actor, report } => {
                let Some(name) = state.name_of(actor) else {
                    return Ok(());
                };
                match report {
                    ProbeReport::Running => state.set_state(&name, ChildState::Running, None),
                    ProbeReport::Inactive(reason) => {
                        state.set_state(&name, ChildState::Inactive, Some(reason))
                    }
                    ProbeReport::Reattached(programs) => {
                        if let Some(child) = state.children.get_mut(&name) {
                            child.last_error = Some(format!(
                                "link detached from outside, re-attached: {}",
                                programs.join(", ")
                            ));
                        }
                    }
                }
            }
            SupervisorMsg::RestartDue { name, generation } => {
                let due = state.children.get(&name).is_some_and(|c| {
                    c.generation == generation && c.state == ChildState::Restarting
                });
                if due {
                    start_child(&myself, state, &name, false).await?;
                }
            }
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SupervisorMsg::RunningProbes(reply) => {
                let running = state
                    .names_of(ChildKind::Probe)
                    .into_iter()
                    .filter_map(|name| {
                        let child = state.children.get(&name)?;
                        if child.state != ChildState::Running {
                            return None;
                        }
                        Some((name, child.actor.clone()?))
                    })
                    .collect();
                let _ = reply.send(running);
            }
            SupervisorMsg::CurrentConfig(reply) => {
                let _ = reply.send(state.config.clone());
            }
            SupervisorMsg::ApplyConfig(config, reply) => {
                let result = apply_config(&myself, state, *config).await;
                let _ = reply.send(result);
            }
            SupervisorMsg::Retry(name, reply) => {
                let result = match state.children.get(&name).map(|c| c.state.clone()) {
                    None => Err(format!("no actor named `{name}`")),
                    Some(ChildState::Failed) => {
                        reset_restarts(state, &name);
                        start_child(&myself, state, &name, false).await?;
                        Ok(format!("restarted {name}"))
                    }
                    Some(other) => Ok(format!("{name} is {}; nothing to retry", other.as_str())),
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::Kill(name, reply) => {
                let result = match state.children.get(&name).and_then(|c| c.actor.clone()) {
                    Some(actor) => {
                        tracing::warn!(actor = %name, "killing actor on request (fault injection)");
                        actor.kill();
                        Ok(())
                    }
                    None => Err(format!("actor `{name}` is not running")),
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The default would stop the supervisor when any child dies; we restart that child only.
        let (cell, error) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "terminated".to_string()))
            }
            SupervisionEvent::ActorFailed(cell, error) => (cell, format!("{error}")),
            _ => return Ok(()),
        };
        let Some(name) = state.name_of(cell.get_id()) else {
            return Ok(());
        };
        tracing::error!(actor = %name, %error, "actor died");
        if let Some(child) = state.children.get_mut(&name) {
            child.actor = None;
            child.last_error = Some(error);
        }
        schedule_restart(&myself, state, &name);
        Ok(())
    }
}

/// Diffs probe sections and restarts, starts or stops only the probes that changed.
async fn apply_config(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    new: Config,
) -> Result<Vec<String>, String> {
    let cold = state.config.cold_changes(&new);
    if !cold.is_empty() {
        return Err(format!(
            "{} cannot change while the agent runs; nothing was applied (restart the agent)",
            cold.join(", ")
        ));
    }
    let old = std::mem::replace(&mut state.config, new);
    let mut actions = Vec::new();
    if old.agent.log_level != state.config.agent.log_level {
        crate::telemetry::apply_log_level(&state.config.agent.log_level);
        actions.push(format!("log level set to {}", state.config.agent.log_level));
    }
    if old.metrics != state.config.metrics {
        state
            .ctx
            .store
            .set_max_series_per_family(state.config.metrics.max_series_per_family);
        actions.push("metrics settings updated".to_string());
    }
    if old.supervisor != state.config.supervisor {
        actions.push("supervisor settings updated".to_string());
    }
    for name in state.names_of(ChildKind::Probe) {
        let name = name.as_str();
        let was = state.probe_enabled(name, &old);
        let now = state.probe_enabled(name, &state.config);
        let changed = state.probe_section(name, &old) != state.probe_section(name, &state.config);
        let failed = state
            .children
            .get(name)
            .is_some_and(|c| c.state == ChildState::Failed);
        match (was, now) {
            (true, false) => {
                stop_child(state, name).await;
                state.set_state(name, ChildState::Disabled, None);
                actions.push(format!("stopped {name}"));
            }
            (false, true) => {
                reset_restarts(state, name);
                start_child(myself, state, name, false)
                    .await
                    .map_err(|e| e.to_string())?;
                actions.push(format!("started {name}"));
            }
            (true, true) if changed || failed => {
                stop_child(state, name).await;
                reset_restarts(state, name);
                start_child(myself, state, name, false)
                    .await
                    .map_err(|e| e.to_string())?;
                actions.push(format!("restarted {name}"));
            }
            _ => {}
        }
    }
    Ok(actions)
}

fn reset_restarts(state: &mut SupervisorState, name: &str) {
    let initial = state.config.supervisor.backoff_initial();
    if let Some(child) = state.children.get_mut(name) {
        child.recent_restarts.clear();
        child.next_backoff = initial;
        child.state = ChildState::Starting;
        child.reason = None;
        child.last_error = None;
    }
}
