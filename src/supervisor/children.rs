//! The supervisor's children: each registered part with its actor, state and restart budget,
//! in registry order (services first), and the rows it publishes on the status board.

use std::collections::BTreeMap;
use std::time::Instant;

use ractor::{ActorCell, ActorId, ActorRef};

use super::backoff::RestartBudget;
use crate::config::Config;
use crate::core::part::PartEntry;
use crate::core::status::{ActorStatus, ChildState, PartKind};
use crate::core::ProbeMsg;

pub struct Child {
    pub entry: PartEntry,
    pub actor: Option<ActorCell>,
    /// The typed handle of a probe actor (for the sampler).
    pub probe: Option<ActorRef<ProbeMsg>>,
    pub state: ChildState,
    pub reason: Option<String>,
    pub restarts: u64,
    pub budget: RestartBudget,
    pub last_error: Option<String>,
    pub started_at: Option<Instant>,
    /// Bumped on every start and stop, so stale timers and termination events are ignored.
    pub generation: u64,
}

impl Child {
    pub fn kind(&self) -> PartKind {
        self.entry.kind
    }

    pub fn enabled(&self, config: &Config) -> bool {
        (self.entry.enabled)(config)
    }

    /// The child's section as JSON (`Null` if it owns none): a change restarts it.
    pub fn section(&self, config: &Config) -> serde_json::Value {
        self.entry
            .section
            .as_ref()
            .map_or(serde_json::Value::Null, |s| config.section_json(s.path))
    }
}

pub struct Children {
    by_name: BTreeMap<&'static str, Child>,
    /// Registry order: services first, then probes; children start in this order.
    order: Vec<&'static str>,
}

impl Children {
    /// Enabled parts start out `starting`, the others `disabled`: a probe shown `disabled` until
    /// its turn would count as ready and let `/readyz` answer before it attached.
    pub fn new(parts: Vec<PartEntry>, config: &Config) -> Self {
        let mut parts = parts;
        // Services start first whatever order the registry lists them in.
        parts.sort_by_key(|p| p.kind != PartKind::Service);
        let mut by_name = BTreeMap::new();
        let mut order = Vec::new();
        for entry in parts {
            order.push(entry.name);
            let state = if (entry.enabled)(config) {
                ChildState::Starting
            } else {
                ChildState::Disabled
            };
            by_name.insert(
                entry.name,
                Child {
                    entry,
                    actor: None,
                    probe: None,
                    state,
                    reason: None,
                    restarts: 0,
                    budget: RestartBudget::new(&config.supervisor),
                    last_error: None,
                    started_at: None,
                    generation: 0,
                },
            );
        }
        Self { by_name, order }
    }

    pub fn get(&self, name: &str) -> Option<&Child> {
        self.by_name.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Child> {
        self.by_name.get_mut(name)
    }

    /// Names in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.order.clone()
    }

    pub fn names_of(&self, kind: PartKind) -> Vec<&'static str> {
        self.order
            .iter()
            .copied()
            .filter(|name| self.by_name.get(name).is_some_and(|c| c.kind() == kind))
            .collect()
    }

    pub fn name_of(&self, id: ActorId) -> Option<&'static str> {
        self.by_name
            .iter()
            .find(|(_, c)| c.actor.as_ref().is_some_and(|a| a.get_id() == id))
            .map(|(name, _)| *name)
    }

    pub fn set_state(&mut self, name: &str, state: ChildState, reason: Option<String>) {
        if let Some(child) = self.by_name.get_mut(name) {
            if child.state != state {
                tracing::info!(
                    actor = name,
                    state = state.as_str(),
                    reason = reason.as_deref().unwrap_or(""),
                    "actor state"
                );
            }
            child.state = state;
            child.reason = reason;
        }
    }

    /// Running probe actors, typed, for the sampler.
    pub fn running_probes(&self) -> Vec<(String, ActorRef<ProbeMsg>)> {
        self.names_of(PartKind::Probe)
            .into_iter()
            .filter_map(|name| {
                let child = self.by_name.get(name)?;
                if child.state != ChildState::Running {
                    return None;
                }
                Some((name.to_string(), child.probe.clone()?))
            })
            .collect()
    }

    /// Status rows, alphabetical as `ctl status` has always listed them; the status board fills
    /// what is read-time (uptime, sampling, details).
    pub fn rows(&self) -> Vec<ActorStatus> {
        self.by_name
            .iter()
            .map(|(name, c)| ActorStatus {
                name: name.to_string(),
                kind: c.kind(),
                flag: c.entry.roles,
                state: c.state.clone(),
                reason: c.reason.clone(),
                restarts: c.restarts,
                last_error: c.last_error.clone(),
                uptime_secs: None,
                started_at: c.started_at,
                sampling_divisor: None,
                detail: None,
                report: None,
            })
            .collect()
    }

    /// Probe names, for error messages.
    pub fn probe_names(&self) -> String {
        self.names_of(PartKind::Probe).join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status::StatusBoard;

    fn part(name: &'static str, kind: PartKind, enabled: fn(&Config) -> bool) -> PartEntry {
        let mut entry = PartEntry::service(name, |_| panic!("not started in this test"));
        entry.kind = kind;
        entry.enabled = enabled;
        entry
    }

    #[test]
    fn before_any_start_enabled_parts_are_starting_and_the_agent_not_ready() {
        let config = Config::defaults(Vec::new().into()).unwrap();
        let children = Children::new(
            vec![
                part("on", PartKind::Probe, |_| true),
                part("off", PartKind::Probe, |_| false),
                part("svc", PartKind::Service, |_| true),
            ],
            &config,
        );
        let state = |name| children.get(name).map(|c| c.state.clone());
        assert_eq!(state("on"), Some(ChildState::Starting));
        assert_eq!(state("off"), Some(ChildState::Disabled));
        let board = StatusBoard::new(Instant::now());
        board.publish_rows(children.rows());
        assert!(!board.status().ready);
    }
}
