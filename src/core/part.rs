//! A part of the agent as the supervisor sees it: a name, a kind, the config section it owns, and
//! how to start it. Services, probes and (later) triggers and sinks share this one shape; the
//! production list is `crate::registry`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};

use super::context::AgentContext;
use super::messages::{ProbeMsg, SupervisorMsg};
use super::probe::Roles;
use super::status::PartKind;
use crate::config::{Config, Section, SectionSpec};

/// What a part's constructor receives.
pub struct PartArgs {
    pub ctx: Arc<AgentContext>,
    pub config: Config,
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The supervisor's cell: parts are spawned linked to it.
    pub parent: ActorCell,
}

/// A started part: its actor, and its probe handle when it is a probe.
pub struct Spawned {
    pub cell: ActorCell,
    pub probe: Option<ActorRef<ProbeMsg>>,
}

pub type SpawnFuture = Pin<Box<dyn Future<Output = Result<Spawned, SpawnErr>> + Send>>;

pub struct PartEntry {
    pub name: &'static str,
    pub kind: PartKind,
    /// Upstream's tracer `flag`: none for services.
    pub roles: Roles,
    /// An essential part (listener) that cannot start at start-up stops the agent with a clear
    /// error; the others are retried with backoff while metrics keep flowing.
    pub essential: bool,
    /// The config section the part owns, if any.
    pub section: Option<SectionSpec>,
    /// Whether the part runs under this configuration (probes: their `enabled` key).
    pub enabled: fn(&Config) -> bool,
    pub spawn: fn(PartArgs) -> SpawnFuture,
}

impl PartEntry {
    /// A service: always on, started before the probes.
    pub fn service(name: &'static str, spawn: fn(PartArgs) -> SpawnFuture) -> Self {
        Self {
            name,
            kind: PartKind::Service,
            roles: Roles::NONE,
            essential: false,
            section: None,
            enabled: |_| true,
            spawn,
        }
    }

    /// Marks the part essential (see [`PartEntry::essential`]).
    pub fn essential(mut self) -> Self {
        self.essential = true;
        self
    }

    /// The part owns section `S`.
    pub fn with_section<S: Section>(mut self) -> Self {
        self.section = Some(SectionSpec::of::<S>());
        self
    }
}

/// Spawns a service's actor linked to the supervisor (`PartArgs::parent`): the whole of most
/// services' constructors once they have built their actor's arguments.
pub fn spawn_linked<A: Actor>(parent: ActorCell, actor: A, arguments: A::Arguments) -> SpawnFuture {
    Box::pin(async move {
        let (actor, _) = Actor::spawn_linked(None, actor, arguments, parent).await?;
        Ok(Spawned {
            cell: actor.get_cell(),
            probe: None,
        })
    })
}
