//! Elasticsearch/OpenSearch sink service (`elasticsearch` in `ctl status`): subscribes to the
//! event bus and runs the bulk sink (`src/events/elasticsearch/`) as a task it owns. With
//! `events.elasticsearch.enabled = false` it stays idle and subscribes to nothing. It fails (and
//! the supervisor retries it with backoff) only when its spool cannot be opened or written, or
//! the client cannot be built (a bad `ca_file`); an unreachable cluster is not a failure:
//! documents wait in the spool.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::actors::open_when_free::open_when_free;
use crate::actors::server_task::ServerTask;
use crate::core::status::PartDetail;
use crate::events::elasticsearch::spool::SpoolError;
use crate::events::elasticsearch::status::StatusReport;
use crate::events::elasticsearch::{BulkClient, BulkSink, ElasticsearchConfig, SinkStatus, Spool};

/// Service name: `ctl status` row and status board key.
const NAME: &str = "elasticsearch";
use crate::core::part::{spawn_linked, PartEntry};
use crate::core::AgentContext;

pub enum EsSinkMsg {
    /// The sink task stopped on an error: fail, so the supervisor restarts us.
    SinkFailed(String),
}

pub struct ElasticsearchSink;

pub struct EsSinkArgs {
    pub config: ElasticsearchConfig,
    pub ctx: Arc<AgentContext>,
}

pub struct EsSinkState {
    /// None while disabled.
    sink: Option<ServerTask>,
}

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service(NAME, |part| {
        let args = EsSinkArgs {
            config: (*part.config.section::<ElasticsearchConfig>()).clone(),
            ctx: part.ctx,
        };
        spawn_linked(part.parent, ElasticsearchSink, args)
    })
    .with_section::<ElasticsearchConfig>()
}

/// Opens the spool, waiting briefly while a killed predecessor's task (aborted, not yet
/// dropped) still holds its lock.
async fn open_spool(config: &ElasticsearchConfig) -> Result<Spool, String> {
    let dir = config.spool_dir.clone();
    let max = config.spool_max_bytes();
    open_when_free(
        move || Spool::open(&dir, max),
        |e| matches!(e, SpoolError::InUse { .. }),
    )
    .await?
    .map_err(|e| format!("{e} (events.elasticsearch.spool_dir)"))
}

impl Actor for ElasticsearchSink {
    type Msg = EsSinkMsg;
    type State = EsSinkState;
    type Arguments = EsSinkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let config = args.config;
        if !config.enabled {
            args.ctx
                .status
                .set_detail(NAME, PartDetail::Elasticsearch(SinkStatus::default()));
            return Ok(EsSinkState { sink: None });
        }
        // Subscribed first: documents published while the spool opens are kept.
        let receiver = args.ctx.events.subscribe();
        let client = BulkClient::new(&config)?;
        let spool = open_spool(&config).await?;
        tracing::info!(
            addresses = ?config.addresses,
            index = %config.index,
            spool_dir = %config.spool_dir.display(),
            spooled = spool.documents(),
            "elasticsearch sink started"
        );
        let ctx = args.ctx.clone();
        let report: StatusReport = Arc::new(move |status: &SinkStatus| {
            ctx.status
                .set_detail(NAME, PartDetail::Elasticsearch(status.clone()));
        });
        let sink = BulkSink::new(config, client, spool, report);
        let reporter = myself.clone();
        let task = ServerTask::spawn(|token| async move {
            if let Err(e) = sink.run(receiver, token).await {
                let _ = reporter.cast(EsSinkMsg::SinkFailed(e.to_string()));
            }
        });
        Ok(EsSinkState { sink: Some(task) })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The sink spools what is in memory or in flight before it returns.
        if let Some(task) = state.sink.as_mut() {
            task.stop("elasticsearch", Duration::from_secs(3)).await;
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
            EsSinkMsg::SinkFailed(e) => {
                if state.sink.as_ref().is_some_and(|t| t.is_stopping()) {
                    return Ok(());
                }
                Err(e.into())
            }
        }
    }
}
