//! The bulk sink's loop: takes documents from the bus, batches them (`batch_size`, or whatever
//! waited `flush_interval_ms`), sends one `_bulk` request at a time, and keeps every document
//! until the cluster has it. Order of sending: the spool (oldest first, including documents put
//! back in front for a retry), then the documents in memory. Once anything is in the spool, new
//! documents go there too, behind it, so a replay never overtakes.
//!
//! * request failed (no connection, timeout, 429/5xx, auth): the batch goes to (or stays at)
//!   the head of the spool; the next attempt waits for the backoff.
//! * 2xx: indexed items are done; 429/5xx items go back to the head of the spool (backoff);
//!   other 4xx items are written to the dead-letter file.
//! * 400/413 for the whole request: the batch is split in halves; a single document refused is
//!   dead-lettered.
//! * stop: what is in memory (and a batch in flight) is written to the spool, replayed at the
//!   next start.

mod batching;
mod dead_letters;
mod reply;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::dead_letters::DeadLetters;
use super::backoff::Backoff;
use super::bulk::BulkDoc;
use super::client::{BulkClient, BulkReply};
use super::config::ElasticsearchConfig;
use super::spool::{Peeked, Spool, SpoolError};
use super::status::{SinkStatus, StatusReport};
use crate::events::EventDocument;

/// The sink's name in `huatuo_bamai_event_sink_dropped_total{sink}`.
pub const SINK: &str = "elasticsearch";

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

type Sending = Pin<Box<dyn Future<Output = BulkReply> + Send>>;

enum Origin {
    Memory,
    Spool(Peeked),
}

struct InFlight {
    docs: Vec<BulkDoc>,
    origin: Origin,
}

pub struct BulkSink {
    config: ElasticsearchConfig,
    client: BulkClient,
    spool: Spool,
    dead_letters: DeadLetters,
    memory: VecDeque<BulkDoc>,
    /// When the oldest document in memory arrived.
    memory_since: Option<Instant>,
    backoff: Backoff,
    /// No request before this (backing off).
    retry_at: Option<Instant>,
    /// Documents per request: `batch_size`, halved after a 400/413 for the whole request.
    batch_limit: usize,
    dropped_in_burst: u64,
    status: SinkStatus,
    report_status: StatusReport,
}

impl BulkSink {
    pub fn new(
        config: ElasticsearchConfig,
        client: BulkClient,
        spool: Spool,
        report_status: StatusReport,
    ) -> Self {
        let backoff = Backoff::new(
            Duration::from_millis(config.retry_backoff_initial_ms),
            Duration::from_millis(config.retry_backoff_max_ms),
        );
        let status = SinkStatus {
            enabled: true,
            idle: true,
            address: client.address(),
            ..Default::default()
        };
        let mut sink = Self {
            dead_letters: DeadLetters {
                path: config.dead_letter_file.clone(),
                index: config.index.clone(),
            },
            batch_limit: config.batch_size,
            config,
            client,
            spool,
            memory: VecDeque::new(),
            memory_since: None,
            backoff,
            retry_at: None,
            dropped_in_burst: 0,
            status,
            report_status,
        };
        if sink.spool.recovered_corrupt > 0 {
            sink.count_dropped(sink.spool.recovered_corrupt, "torn spool line");
        }
        sink.report();
        sink
    }

    /// Most documents kept in memory; past it the sink is behind and the rest goes to the spool.
    fn memory_limit(&self) -> usize {
        (self.config.batch_size * 4).max(1024)
    }

    /// Runs until cancelled; on cancel, spools what is in memory and returns. Fails only when
    /// the spool cannot be written.
    pub async fn run(
        mut self,
        mut receiver: Receiver<Arc<EventDocument>>,
        token: CancellationToken,
    ) -> Result<(), SinkError> {
        if !self.spool.is_empty() {
            tracing::info!(
                documents = self.spool.documents(),
                bytes = self.spool.bytes(),
                "elasticsearch sink: replaying the spool left by the previous run"
            );
        }
        let mut in_flight: Option<(InFlight, Sending)> = None;
        loop {
            if in_flight.is_none() {
                in_flight = self.next_request()?;
            }
            let wake = self.next_wake(in_flight.is_some());
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                reply = sending(&mut in_flight) => {
                    if let Some((batch, _)) = in_flight.take() {
                        self.finish(batch, reply)?;
                    }
                }
                received = receiver.recv() => {
                    let mut batch = Vec::new();
                    match received {
                        Ok(document) => batch.push(document),
                        Err(RecvError::Lagged(n)) => self.lagged(n),
                        Err(RecvError::Closed) => break,
                    }
                    let caught_up = drain(&mut receiver, &mut batch, self.memory_limit(), |n| self.lagged(n));
                    self.intake(batch)?;
                    if caught_up {
                        self.caught_up();
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        // Stopping: take what is on the bus, then keep everything in the spool.
        let mut rest = Vec::new();
        drain(&mut receiver, &mut rest, usize::MAX, |n| self.lagged(n));
        if let Some((batch, _)) = in_flight.take() {
            // The answer is unknown; sending it again is harmless (same `_id`).
            if let Origin::Memory = batch.origin {
                self.spool.push_front(&batch.docs)?;
                self.count_spooled(batch.docs.len() as u64);
            }
        }
        self.intake(rest)?;
        self.move_memory_to_spool()?;
        self.spool.sync()?;
        if !self.spool.is_empty() {
            tracing::info!(
                documents = self.spool.documents(),
                "elasticsearch sink stopped; spooled documents are sent at the next start"
            );
        }
        self.report();
        Ok(())
    }

    /// When the loop must look again without any message: backoff over, or a batch is due.
    fn next_wake(&self, busy: bool) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        if busy {
            return far;
        }
        if let Some(at) = self.retry_at {
            return at;
        }
        match self.memory_since {
            Some(since) if self.spool.is_empty() => {
                since + Duration::from_millis(self.config.flush_interval_ms)
            }
            _ => far,
        }
    }

    fn count_spooled(&mut self, n: u64) {
        if n > 0 {
            metrics::counter!("huatuo_bamai_event_es_spooled_total").increment(n);
        }
    }

    fn count_dropped(&mut self, n: u64, why: &str) {
        metrics::counter!("huatuo_bamai_event_sink_dropped_total", "sink" => SINK).increment(n);
        self.status.dropped += n;
        if why != "bus" {
            tracing::warn!(
                dropped = n,
                reason = why,
                "elasticsearch sink lost documents"
            );
        }
    }

    fn lagged(&mut self, n: u64) {
        if self.dropped_in_burst == 0 {
            tracing::warn!(
                sink = SINK,
                dropped = n,
                "elasticsearch sink fell behind the event bus; the oldest documents are dropped"
            );
        }
        self.dropped_in_burst += n;
        self.count_dropped(n, "bus");
    }

    fn caught_up(&mut self) {
        if self.dropped_in_burst > 0 {
            tracing::warn!(
                sink = SINK,
                dropped = self.dropped_in_burst,
                "elasticsearch sink caught up with the event bus"
            );
            self.dropped_in_burst = 0;
        }
    }

    /// Gauges and the `ctl status` line.
    fn report(&mut self) {
        let pending_memory = self.memory.len() as u64;
        metrics::gauge!("huatuo_bamai_event_es_spool_documents").set(self.spool.documents() as f64);
        metrics::gauge!("huatuo_bamai_event_es_spool_bytes").set(self.spool.bytes() as f64);
        metrics::gauge!("huatuo_bamai_event_es_pending_documents")
            .set((self.spool.documents() + pending_memory) as f64);
        metrics::gauge!("huatuo_bamai_event_es_connected").set(if self.status.connected {
            1.0
        } else {
            0.0
        });
        self.status.address = self.client.address();
        self.status.spooled_documents = self.spool.documents();
        self.status.spooled_bytes = self.spool.bytes();
        (self.report_status)(&self.status);
    }
}

/// The future of the request in flight, or one that never completes.
async fn sending(in_flight: &mut Option<(InFlight, Sending)>) -> BulkReply {
    match in_flight {
        Some((_, request)) => request.await,
        None => std::future::pending().await,
    }
}

/// Moves what waits on the bus into `batch` (up to `max`); true when the bus is empty.
fn drain(
    receiver: &mut Receiver<Arc<EventDocument>>,
    batch: &mut Vec<Arc<EventDocument>>,
    max: usize,
    mut lagged: impl FnMut(u64),
) -> bool {
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(document) => batch.push(document),
            Err(TryRecvError::Lagged(n)) => lagged(n),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests;
