//! Container discovery actor: rescans cgroupfs every `containers.rescan_interval_ms`, enriches
//! from the kubelet / Docker when reachable, and publishes the set to every collector when it
//! changes. With `containers.enabled = false` it publishes nothing (an empty set).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::containers::{ContainerSet, ContainersConfig, Discovery};
use crate::core::part::{spawn_linked, PartEntry};
use crate::core::AgentContext;

pub enum DiscoveryMsg {
    Rescan,
}

pub struct ContainerDiscovery;

pub struct DiscoveryArgs {
    pub config: Config,
    pub ctx: Arc<AgentContext>,
}

pub struct DiscoveryState {
    discovery: Option<Discovery>,
    ctx: Arc<AgentContext>,
    ticker: Option<JoinHandle<()>>,
}

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service("containers", |part| {
        let args = DiscoveryArgs {
            config: part.config,
            ctx: part.ctx,
        };
        spawn_linked(part.parent, ContainerDiscovery, args)
    })
    .with_section::<ContainersConfig>()
}

impl Actor for ContainerDiscovery {
    type Msg = DiscoveryMsg;
    type State = DiscoveryState;
    type Arguments = DiscoveryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let settings = args.config.section::<ContainersConfig>();
        let (discovery, ticker) = if settings.enabled {
            let discovery = Discovery::new(&args.config.agent.sysfs_root, &settings)
                .with_node_hostname(&crate::telemetry::hostname(&args.config));
            tracing::info!(layout = ?discovery.layout(), "container discovery started");
            let period = Duration::from_millis(settings.rescan_interval_ms);
            let ticker = myself.send_interval(period, || DiscoveryMsg::Rescan);
            let _ = myself.cast(DiscoveryMsg::Rescan);
            (Some(discovery), Some(ticker))
        } else {
            tracing::info!("container discovery disabled (containers.enabled = false)");
            (None, None)
        };
        Ok(DiscoveryState {
            discovery,
            ctx: args.ctx,
            ticker,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DiscoveryMsg::Rescan => {
                let Some(discovery) = state.discovery.as_mut() else {
                    return Ok(());
                };
                let found = discovery.discover().await;
                publish(&state.ctx, found);
            }
        }
        Ok(())
    }
}

/// Publishes `found` when it differs from the current set (collectors wake only on change).
fn publish(ctx: &AgentContext, found: ContainerSet) {
    ctx.containers_tx.send_if_modified(|current| {
        if **current == found {
            return false;
        }
        let (before, after) = (current.len(), found.len());
        if before != after {
            tracing::info!(before, after, "container set changed");
        }
        *current = Arc::new(found);
        true
    });
}
