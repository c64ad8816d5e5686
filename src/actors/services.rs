//! Service actors (always on, not toggled by config): the HTTP exporter, container discovery,
//! the event store sink, the Elasticsearch sink (idle unless `events.elasticsearch.enabled`),
//! the adaptive sampler and the control socket. They start in this order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{ActorCell, ActorRef, SpawnErr};

use crate::config::Config;
use crate::supervisor::{AgentContext, SupervisorMsg};

type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

pub struct ServiceEntry {
    pub name: &'static str,
    /// An essential service (listener) that cannot start at start-up stops the agent with a
    /// clear error; the others are retried with backoff like probes while metrics keep flowing.
    pub essential: bool,
    pub spawn: fn(Arc<AgentContext>, Config, ActorRef<SupervisorMsg>, ActorCell) -> SpawnFuture,
}

pub fn registry() -> Vec<ServiceEntry> {
    vec![
        ServiceEntry {
            name: "http",
            essential: true,
            spawn: |ctx, config, supervisor, parent| {
                Box::pin(super::http::spawn(ctx, config, supervisor, parent))
            },
        },
        ServiceEntry {
            name: "containers",
            essential: false,
            spawn: |ctx, config, supervisor, parent| {
                Box::pin(super::container_discovery::spawn(
                    ctx, config, supervisor, parent,
                ))
            },
        },
        ServiceEntry {
            name: "event_store",
            essential: false,
            spawn: |ctx, config, supervisor, parent| {
                Box::pin(super::event_store::spawn(ctx, config, supervisor, parent))
            },
        },
        ServiceEntry {
            name: "elasticsearch",
            essential: false,
            spawn: |ctx, config, supervisor, parent| {
                Box::pin(super::es_sink::spawn(ctx, config, supervisor, parent))
            },
        },
        ServiceEntry {
            name: "sampler",
            essential: false,
            spawn: |ctx, config, supervisor, parent| {
                Box::pin(super::sampler::spawn(ctx, config, supervisor, parent))
            },
        },
        ServiceEntry {
            name: "control",
            essential: true,
            spawn: |ctx, config, supervisor, parent| {
                Box::pin(super::control::spawn(ctx, config, supervisor, parent))
            },
        },
    ]
}
