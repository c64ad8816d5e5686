//! Event store sink: subscribes to the event bus, writes every document into the embedded store
//! (one committed transaction per batch of documents that arrived together) and applies the
//! retention every minute. It owns the database and lends it to the HTTP API through
//! `AgentContext::event_store`. A sink that falls behind loses the oldest documents on the bus
//! (counted, logged once per burst); the bus never waits for it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actors::open_when_free::open_when_free;
use crate::actors::server_task::ServerTask;
use crate::core::part::{spawn_linked, PartEntry};
use crate::core::AgentContext;
use crate::events::store::{EventStore, EventsConfig, Retention, StoreError};
use crate::events::EventDocument;

/// How often documents past their age or the size cap are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Most documents written in one transaction.
const MAX_BATCH: usize = 1024;
const SINK: &str = "store";

pub enum EventStoreMsg {
    /// Apply the retention (age, then size).
    Purge,
    /// The writer stopped on an error: fail, so the supervisor restarts us and we reopen.
    WriterFailed(String),
}

pub struct EventStoreSink;

pub struct EventStoreArgs {
    pub config: EventsConfig,
    pub ctx: Arc<AgentContext>,
}

pub struct EventStoreState {
    ctx: Arc<AgentContext>,
    store: Arc<EventStore>,
    writer: ServerTask,
    purge_timer: JoinHandle<()>,
}

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service("event_store", |part| {
        let args = EventStoreArgs {
            config: (*part.config.section::<EventsConfig>()).clone(),
            ctx: part.ctx,
        };
        spawn_linked(part.parent, EventStoreSink, args)
    })
    .with_section::<EventsConfig>()
}

/// Opens the store, waiting briefly while another handle in this process (a killed
/// predecessor's last write, a query) still holds the file.
async fn open_store(config: &EventsConfig) -> Result<EventStore, String> {
    let path = config.store_path.clone();
    let retention = Retention::from_config(config);
    open_when_free(
        move || EventStore::open(&path, retention),
        |e| matches!(e, StoreError::InUse { .. }),
    )
    .await?
    .map_err(|e| format!("{e} (events.store_path)"))
}

impl Actor for EventStoreSink {
    type Msg = EventStoreMsg;
    type State = EventStoreState;
    type Arguments = EventStoreArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Subscribed before anything else: documents published while the file opens are kept.
        let receiver = args.ctx.events.subscribe();
        // A killed predecessor skipped post_stop; its handle must go before we can open.
        drop(args.ctx.event_store.replace(None));
        let store = Arc::new(open_store(&args.config).await?);
        let stats = store.stats().ok();
        tracing::info!(
            path = %store.path().display(),
            documents = stats.map(|s| s.documents).unwrap_or(0),
            retention_days = args.config.retention_days,
            max_store_mib = args.config.max_store_mib,
            "event store open"
        );
        args.ctx.event_store.replace(Some(store.clone()));
        let writer_store = store.clone();
        let reporter = myself.clone();
        let writer = ServerTask::spawn(|token| async move {
            if let Err(e) = write_loop(receiver, writer_store, token).await {
                let _ = reporter.cast(EventStoreMsg::WriterFailed(e));
            }
        });
        // A first purge at start applies a lowered cap or a long downtime's expiries at once.
        let _ = myself.cast(EventStoreMsg::Purge);
        let purge_timer = myself.send_interval(PURGE_INTERVAL, || EventStoreMsg::Purge);
        Ok(EventStoreState {
            ctx: args.ctx,
            store,
            writer,
            purge_timer,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.purge_timer.abort();
        // The writer stores what is already on the bus before it returns.
        state
            .writer
            .stop("event_store", Duration::from_secs(3))
            .await;
        let mine = state
            .ctx
            .event_store
            .get()
            .is_some_and(|s| Arc::ptr_eq(&s, &state.store));
        if mine {
            state.ctx.event_store.replace(None);
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
            EventStoreMsg::Purge => {
                let store = state.store.clone();
                let outcome = tokio::task::spawn_blocking(move || store.purge(SystemTime::now()))
                    .await
                    .map_err(|e| format!("event store purge panicked: {e}"))?;
                let outcome = outcome.inspect_err(|_| {
                    metrics::counter!("huatuo_bamai_event_store_errors_total").increment(1);
                })?;
                if outcome.expired + outcome.evicted > 0 {
                    tracing::info!(
                        expired = outcome.expired,
                        evicted = outcome.evicted,
                        documents = outcome.documents,
                        "event store retention applied"
                    );
                }
                metrics::counter!("huatuo_bamai_event_store_purged_total", "reason" => "age")
                    .increment(outcome.expired as u64);
                metrics::counter!("huatuo_bamai_event_store_purged_total", "reason" => "size")
                    .increment(outcome.evicted as u64);
                set_size_gauges(outcome.documents, outcome.stored_bytes);
                Ok(())
            }
            EventStoreMsg::WriterFailed(e) => {
                if state.writer.is_stopping() {
                    return Ok(());
                }
                Err(e.into())
            }
        }
    }
}

fn set_size_gauges(documents: u64, stored_bytes: u64) {
    metrics::gauge!("huatuo_bamai_event_store_documents").set(documents as f64);
    metrics::gauge!("huatuo_bamai_event_store_bytes").set(stored_bytes as f64);
}

/// Counts what the sink lost to the bus and logs once per burst: when it first falls behind and
/// when it has caught up again.
#[derive(Default)]
struct LagReport {
    dropped_in_burst: u64,
}

impl LagReport {
    fn lagged(&mut self, dropped: u64) {
        metrics::counter!("huatuo_bamai_event_sink_dropped_total", "sink" => SINK)
            .increment(dropped);
        if self.dropped_in_burst == 0 {
            tracing::warn!(
                sink = SINK,
                dropped,
                "event store fell behind the event bus; the oldest documents are dropped"
            );
        }
        self.dropped_in_burst += dropped;
    }

    fn caught_up(&mut self) {
        if self.dropped_in_burst > 0 {
            tracing::warn!(
                sink = SINK,
                dropped = self.dropped_in_burst,
                "event store caught up with the event bus"
            );
            self.dropped_in_burst = 0;
        }
    }
}

/// Moves what is waiting on the bus into `batch` (up to `MAX_BATCH`); true when the bus is empty.
fn drain(
    receiver: &mut Receiver<Arc<EventDocument>>,
    batch: &mut Vec<Arc<EventDocument>>,
    lag: &mut LagReport,
) -> bool {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(document) => batch.push(document),
            Err(TryRecvError::Lagged(n)) => lag.lagged(n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return true,
        }
    }
    false
}

/// Writes one batch in one transaction, off the async threads.
async fn write_batch(
    store: &Arc<EventStore>,
    batch: Vec<Arc<EventDocument>>,
) -> Result<(), String> {
    let count = batch.len() as u64;
    let store = store.clone();
    let written =
        tokio::task::spawn_blocking(move || store.insert(batch.iter().map(|d| d.as_ref())))
            .await
            .map_err(|e| format!("event store write panicked: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
    match written {
        Ok(outcome) => {
            metrics::counter!("huatuo_bamai_event_store_written_total")
                .increment(outcome.written as u64);
            if !outcome.rejected.is_empty() {
                metrics::counter!("huatuo_bamai_event_sink_dropped_total", "sink" => SINK)
                    .increment(outcome.rejected.len() as u64);
                tracing::warn!(
                    ids = ?outcome.rejected,
                    "event store refused documents whose tracer_id does not start with a time"
                );
            }
            if outcome.evicted > 0 {
                metrics::counter!("huatuo_bamai_event_store_purged_total", "reason" => "size")
                    .increment(outcome.evicted as u64);
            }
            set_size_gauges(outcome.documents, outcome.stored_bytes);
            Ok(())
        }
        Err(e) => {
            metrics::counter!("huatuo_bamai_event_store_errors_total").increment(1);
            metrics::counter!("huatuo_bamai_event_sink_dropped_total", "sink" => SINK)
                .increment(count);
            Err(format!(
                "event store write failed, {count} documents lost: {e}"
            ))
        }
    }
}

/// Receives documents until cancelled, writing each batch that arrived together in one
/// transaction; on cancel, writes what is already on the bus. Returns the first write error.
async fn write_loop(
    mut receiver: Receiver<Arc<EventDocument>>,
    store: Arc<EventStore>,
    token: CancellationToken,
) -> Result<(), String> {
    let mut lag = LagReport::default();
    loop {
        let first = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            received = receiver.recv() => received,
        };
        let mut batch = match first {
            Ok(document) => vec![document],
            Err(RecvError::Lagged(n)) => {
                lag.lagged(n);
                Vec::new()
            }
            // The sender lives in AgentContext as long as the agent.
            Err(RecvError::Closed) => return Ok(()),
        };
        let empty = drain(&mut receiver, &mut batch, &mut lag);
        if !batch.is_empty() {
            write_batch(&store, batch).await?;
        }
        if empty {
            lag.caught_up();
        }
    }
    loop {
        let mut batch = Vec::new();
        let empty = drain(&mut receiver, &mut batch, &mut lag);
        if !batch.is_empty() {
            write_batch(&store, batch).await?;
        }
        if empty {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
