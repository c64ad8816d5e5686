//! Operators' commands (from the control socket) and live reconfiguration: each command is one
//! supervisor message, so it reads and replaces the configuration atomically.

use ractor::ActorRef;

use super::{reset_restarts, start_child, stop_child, SupervisorState};
use crate::config::{Config, Live};
use crate::core::status::{ChildState, PartKind};
use crate::core::{ControlCommand, ControlError, SupervisorMsg};

pub(super) async fn run(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    command: ControlCommand,
) -> Result<Vec<String>, ControlError> {
    match command {
        ControlCommand::Set { key, value } => {
            let config = state.config.with_key(&key, &value)?;
            apply(myself, state, config).await
        }
        ControlCommand::SetMany(edits) => {
            let mut config = state.config.clone();
            for (key, value) in &edits {
                config = config.with_key(key, value)?;
            }
            apply(myself, state, config).await
        }
        ControlCommand::Reload => {
            let config = state
                .ctx
                .source
                .load()
                .map_err(|source| ControlError::Reload {
                    path: state.ctx.source.path.display().to_string(),
                    source,
                })?;
            apply(myself, state, config).await
        }
        ControlCommand::Apply(config) => apply(myself, state, *config).await,
        ControlCommand::Enable(name) => match kind_of(state, &name) {
            Some(PartKind::Service) => retry_service(myself, state, &name).await,
            Some(PartKind::Probe) => set_enabled(myself, state, &name, true).await,
            None => Err(unknown_probe(state, &name)),
        },
        ControlCommand::Disable(name) => match kind_of(state, &name) {
            Some(PartKind::Probe) => set_enabled(myself, state, &name, false).await,
            _ => Err(unknown_probe(state, &name)),
        },
        ControlCommand::Kill(name) => {
            let actor = state.children.get(&name).and_then(|c| c.actor.clone());
            match actor {
                Some(actor) => {
                    tracing::warn!(actor = %name, "killing actor on request (fault injection)");
                    actor.kill();
                    Ok(vec![format!("killed {name}")])
                }
                None => Err(ControlError::NotRunning(name)),
            }
        }
    }
}

fn kind_of(state: &SupervisorState, name: &str) -> Option<PartKind> {
    state.children.get(name).map(|c| c.kind())
}

fn unknown_probe(state: &SupervisorState, name: &str) -> ControlError {
    ControlError::UnknownProbe {
        name: name.to_string(),
        known: state.children.probe_names(),
    }
}

async fn set_enabled(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    name: &str,
    enabled: bool,
) -> Result<Vec<String>, ControlError> {
    let key = format!("probes.{name}.enabled");
    let config = state.config.with_key(&key, &enabled.to_string())?;
    apply(myself, state, config).await
}

/// Starts a `failed` service again with a fresh restart budget.
async fn retry_service(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    name: &str,
) -> Result<Vec<String>, ControlError> {
    let current = state.children.get(name).map(|c| c.state.clone());
    match current {
        Some(ChildState::Failed) => {
            reset_restarts(state, name);
            start(myself, state, name).await?;
            Ok(vec![format!("restarted {name}")])
        }
        Some(other) => Ok(vec![format!(
            "{name} is {}; nothing to retry",
            other.as_str()
        )]),
        None => Err(ControlError::UnknownPart(name.to_string())),
    }
}

async fn start(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    name: &str,
) -> Result<(), ControlError> {
    start_child(myself, state, name, false)
        .await
        .map_err(|e| ControlError::Start {
            name: name.to_string(),
            reason: e.to_string(),
        })
}

/// Applies a validated configuration: agent-wide settings live, then starts, stops or restarts
/// only the parts whose section changed. Keys that need an agent restart refuse the whole edit.
async fn apply(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    new: Config,
) -> Result<Vec<String>, ControlError> {
    let cold = state.config.cold_changes(&new);
    if !cold.is_empty() {
        return Err(ControlError::Cold {
            keys: cold.join(", "),
        });
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
    for name in state.children.names() {
        let Some(child) = state.children.get(name) else {
            continue;
        };
        let restarts_on_change = child
            .entry
            .section
            .as_ref()
            .is_some_and(|s| s.live == Live::RestartPart);
        let was = child.enabled(&old);
        let now = child.enabled(&state.config);
        let changed = restarts_on_change && child.section(&old) != child.section(&state.config);
        let failed_probe = child.kind() == PartKind::Probe && child.state == ChildState::Failed;
        match (was, now) {
            (true, false) => {
                stop_child(state, name).await;
                state.children.set_state(name, ChildState::Disabled, None);
                actions.push(format!("stopped {name}"));
            }
            (false, true) => {
                reset_restarts(state, name);
                start(myself, state, name).await?;
                actions.push(format!("started {name}"));
            }
            (true, true) if changed || failed_probe => {
                stop_child(state, name).await;
                reset_restarts(state, name);
                start(myself, state, name).await?;
                actions.push(format!("restarted {name}"));
            }
            _ => {}
        }
        state.publish();
    }
    Ok(actions)
}
