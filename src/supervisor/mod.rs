//! The root supervisor: owns the actor tree, starts every enabled part, restarts a failed part
//! alone with exponential backoff (marking it `failed` after too many restarts in a window), keeps
//! `inactive` probes out of restart loops, and applies operators' commands. It knows parts only
//! through their registry entries ([`PartEntry`]); the production list is built where the
//! program starts (`crate::registry`).
//!
//! - `children.rs`: the children and their states;
//! - `backoff.rs`: the restart policy;
//! - `commands.rs`: control commands and live reconfiguration;
//! - readiness and status go out on the status board after every message, so `/readyz` and
//!   `ctl status` never wait for a supervisor busy stopping a child.

mod backoff;
mod children;
mod commands;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::config::Config;
use crate::core::part::{PartArgs, PartEntry};
use crate::core::status::{ChildState, PartKind};
use crate::core::{AgentContext, ProbeReport, SupervisorMsg};
use backoff::Verdict;
use children::Children;

pub struct SupervisorState {
    config: Config,
    ctx: Arc<AgentContext>,
    children: Children,
}

pub struct AgentSupervisor;

pub struct SupervisorArgs {
    pub config: Config,
    pub ctx: Arc<AgentContext>,
    /// Every part the agent runs (services and probes), in registry order.
    pub parts: Vec<PartEntry>,
}

impl SupervisorState {
    /// Puts the children's rows on the status board (after every message).
    fn publish(&self) {
        self.ctx.status.publish_rows(self.children.rows());
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
    let args = PartArgs {
        ctx: state.ctx.clone(),
        config: state.config.clone(),
        supervisor: myself.clone(),
        parent: myself.get_cell(),
    };
    match (child.entry.spawn)(args).await {
        Ok(spawned) => {
            child.actor = Some(spawned.cell);
            child.probe = spawned.probe;
            child.started_at = Some(Instant::now());
            // Services are running once spawned; probes report Running/Inactive themselves.
            let next = match child.kind() {
                PartKind::Service => Some(ChildState::Running),
                PartKind::Probe
                    if !matches!(child.state, ChildState::Running | ChildState::Inactive) =>
                {
                    Some(ChildState::Starting)
                }
                PartKind::Probe => None,
            };
            if let Some(next) = next {
                state.children.set_state(name, next, None);
            }
            Ok(())
        }
        Err(error) => {
            let error = error.to_string();
            tracing::error!(actor = name, %error, "actor failed to start");
            if fatal {
                return Err(format!("{name}: {error}").into());
            }
            child.last_error = Some(error);
            child.actor = None;
            child.probe = None;
            schedule_restart(myself, state, name);
            Ok(())
        }
    }
}

/// Books a failure and schedules the next start after the backoff, or marks the child failed.
fn schedule_restart(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, name: &str) {
    let policy = state.config.supervisor.clone();
    let Some(child) = state.children.get_mut(name) else {
        return;
    };
    let delay = match child.budget.on_failure(Instant::now(), &policy) {
        Verdict::RetryAfter(delay) => delay,
        Verdict::GiveUp { restarts } => {
            let reason = format!(
                "gave up after {restarts} restarts within {}s; `ctl enable {name}` retries",
                policy.restart_window_secs
            );
            tracing::error!(actor = name, %reason, "actor failed");
            state
                .children
                .set_state(name, ChildState::Failed, Some(reason));
            return;
        }
    };
    child.restarts += 1;
    child.generation += 1;
    let generation = child.generation;
    tracing::warn!(
        actor = name,
        delay_ms = delay.as_millis() as u64,
        "restarting actor after backoff"
    );
    state.children.set_state(name, ChildState::Restarting, None);
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
    child.probe = None;
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

/// A fresh restart budget and a clean slate before an operator-driven start.
fn reset_restarts(state: &mut SupervisorState, name: &str) {
    let policy = state.config.supervisor.clone();
    if let Some(child) = state.children.get_mut(name) {
        child.budget.reset(&policy);
        child.state = ChildState::Starting;
        child.reason = None;
        child.last_error = None;
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
        let children = Children::new(args.parts, &args.config);
        let state = SupervisorState {
            config: args.config,
            ctx: args.ctx,
            children,
        };
        state.publish();
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Services first: a listener that cannot bind at start-up is fatal (clear error, exit).
        for name in state.children.names() {
            let Some(child) = state.children.get(name) else {
                continue;
            };
            if child.enabled(&state.config) {
                let essential = child.entry.essential;
                start_child(&myself, state, name, essential).await?;
                state.publish();
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
        for name in state.children.names().into_iter().rev() {
            stop_child(state, name).await;
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
                if let Some(name) = state.children.name_of(actor) {
                    on_probe_report(state, name, report);
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
                // The board is republished after every message, so it is current here.
                let _ = reply.send(state.ctx.status.status());
            }
            SupervisorMsg::RunningProbes(reply) => {
                let _ = reply.send(state.children.running_probes());
            }
            SupervisorMsg::CurrentConfig(reply) => {
                let _ = reply.send(state.config.clone());
            }
            SupervisorMsg::Control(command, reply) => {
                let result = commands::run(&myself, state, command).await;
                let _ = reply.send(result);
            }
        }
        state.publish();
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
        let Some(name) = state.children.name_of(cell.get_id()) else {
            return Ok(());
        };
        tracing::error!(actor = %name, %error, "actor died");
        if let Some(child) = state.children.get_mut(name) {
            child.actor = None;
            child.probe = None;
            child.last_error = Some(error);
        }
        schedule_restart(&myself, state, name);
        state.publish();
        Ok(())
    }
}

fn on_probe_report(state: &mut SupervisorState, name: &str, report: ProbeReport) {
    match report {
        ProbeReport::Running => state.children.set_state(name, ChildState::Running, None),
        ProbeReport::Inactive(reason) => {
            state
                .children
                .set_state(name, ChildState::Inactive, Some(reason))
        }
        ProbeReport::Reattached(programs) => {
            if let Some(child) = state.children.get_mut(name) {
                child.last_error = Some(format!(
                    "link detached from outside, re-attached: {}",
                    programs.join(", ")
                ));
            }
        }
    }
}
