//! Pyroscope pusher service (`pyroscope` in `ctl status`): subscribes to the profile bus and
//! runs the pusher (`src/profiling/pyroscope/`) as a task it owns. With
//! `profiling.pyroscope.enabled = false` it stays idle and subscribes to nothing. An
//! unreachable server is not a failure: windows wait in the bounded queue.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::actors::server_task::ServerTask;
use crate::core::part::{spawn_linked, PartEntry};
use crate::core::status::PartDetail;
use crate::core::AgentContext;
use crate::profiling::pyroscope::{Pusher, PyroscopeConfig, PyroscopeStatus, StatusReport};

/// Service name: `ctl status` row and status board key.
const NAME: &str = "pyroscope";

pub enum PyroscopeMsg {}

pub struct PyroscopeService;

pub struct PyroscopeArgs {
    pub config: PyroscopeConfig,
    pub ctx: Arc<AgentContext>,
}

pub struct PyroscopeState {
    /// None while disabled.
    pusher: Option<ServerTask>,
}

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service(NAME, |part| {
        let args = PyroscopeArgs {
            config: (*part.config.section::<PyroscopeConfig>()).clone(),
            ctx: part.ctx,
        };
        spawn_linked(part.parent, PyroscopeService, args)
    })
    .with_section::<PyroscopeConfig>()
}

impl Actor for PyroscopeService {
    type Msg = PyroscopeMsg;
    type State = PyroscopeState;
    type Arguments = PyroscopeArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let config = args.config;
        if !config.enabled {
            args.ctx
                .status
                .set_detail(NAME, PartDetail::Pyroscope(PyroscopeStatus::default()));
            return Ok(PyroscopeState { pusher: None });
        }
        let windows = args.ctx.profiles.subscribe();
        tracing::info!(
            address = %config.address,
            application = %config.application_name,
            queue_windows = config.queue_windows,
            "Pyroscope pusher started"
        );
        let ctx = args.ctx.clone();
        let report: StatusReport = Arc::new(move |status: &PyroscopeStatus| {
            ctx.status
                .set_detail(NAME, PartDetail::Pyroscope(status.clone()));
        });
        let pusher = Pusher::new(config, report)?;
        let task = ServerTask::spawn(|token| pusher.run(windows, token));
        Ok(PyroscopeState { pusher: Some(task) })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.pusher.as_mut() {
            task.stop(NAME, Duration::from_secs(2)).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }
}
