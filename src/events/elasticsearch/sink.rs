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

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::bulk::{self, BulkDoc, ItemOutcome};
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

/// Appends refused documents to `dead_letter_file`, one JSON line each with the error.
struct DeadLetters {
    path: PathBuf,
    index: String,
}

impl DeadLetters {
    fn write(&self, doc: &BulkDoc, status: u16, kind: &str, error: &serde_json::Value) -> bool {
        let head = serde_json::json!({
            "time": crate::events::document::rfc3339(std::time::SystemTime::now()),
            "index": self.index,
            "_id": doc.id,
            "status": status,
            "reason": kind,
            "error": error,
        })
        .to_string();
        // The document is JSON already; splice it in rather than parse it again.
        let line = match serde_json::from_str::<serde_json::Value>(&doc.source) {
            Ok(_) => format!(
                "{},\"document\":{}}}\n",
                head.trim_end_matches('}'),
                doc.source
            ),
            Err(_) => format!(
                "{},\"document_text\":{}}}\n",
                head.trim_end_matches('}'),
                serde_json::Value::from(doc.source.as_str())
            ),
        };
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            })
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    id = %doc.id,
                    "cannot write the dead-letter file; the refused document is lost"
                );
                false
            }
        }
    }
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

    fn intake(&mut self, documents: Vec<Arc<EventDocument>>) -> Result<(), SinkError> {
        if documents.is_empty() {
            return Ok(());
        }
        let mut docs = Vec::with_capacity(documents.len());
        for document in documents {
            match BulkDoc::from_document(&document) {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    tracing::warn!(error = %e, "elasticsearch sink: document not encodable");
                    self.count_dropped(1, "not encodable");
                }
            }
        }
        if self.spool.is_empty() && self.memory.len() + docs.len() <= self.memory_limit() {
            if self.memory.is_empty() {
                self.memory_since = Some(Instant::now());
            }
            self.memory.extend(docs);
        } else {
            // Behind the spool (or memory full): keep the order by queueing after it.
            self.move_memory_to_spool()?;
            self.spool_append(&docs)?;
        }
        self.report();
        Ok(())
    }

    fn move_memory_to_spool(&mut self) -> Result<(), SinkError> {
        if self.memory.is_empty() {
            return Ok(());
        }
        let docs: Vec<BulkDoc> = self.memory.drain(..).collect();
        self.memory_since = None;
        self.spool_append(&docs)
    }

    fn spool_append(&mut self, docs: &[BulkDoc]) -> Result<(), SinkError> {
        let outcome = self.spool.append(docs)?;
        self.count_spooled(outcome.written);
        if outcome.dropped > 0 {
            self.count_dropped(outcome.dropped, "spool full");
        }
        Ok(())
    }

    /// Starts the next request when one is due: from the spool first, else from memory.
    fn next_request(&mut self) -> Result<Option<(InFlight, Sending)>, SinkError> {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            return Ok(None);
        }
        self.retry_at = None;
        let batch = if !self.spool.is_empty() {
            let peeked = loop {
                let peeked = self.spool.peek(self.batch_limit)?;
                if peeked.corrupt > 0 {
                    self.count_dropped(peeked.corrupt, "unreadable spool line");
                }
                if !peeked.docs.is_empty() || self.spool.is_empty() {
                    break peeked;
                }
                // Only unreadable lines: skip them and read on.
                self.spool.commit(&peeked)?;
                if self.spool.is_empty() {
                    break self.spool.peek(self.batch_limit)?;
                }
            };
            if peeked.docs.is_empty() {
                self.spool.commit(&peeked)?;
                self.report();
                return Ok(None);
            }
            InFlight {
                docs: peeked.docs.clone(),
                origin: Origin::Spool(peeked),
            }
        } else {
            let due = self.memory.len() >= self.batch_limit
                || self.memory_since.is_some_and(|since| {
                    now >= since + Duration::from_millis(self.config.flush_interval_ms)
                });
            if self.memory.is_empty() || !due {
                return Ok(None);
            }
            let take = self.batch_limit.min(self.memory.len());
            let docs: Vec<BulkDoc> = self.memory.drain(..take).collect();
            self.memory_since = (!self.memory.is_empty()).then_some(now);
            InFlight {
                docs,
                origin: Origin::Memory,
            }
        };
        let body = bulk::encode(&self.config.index, &batch.docs);
        let request = Box::pin(self.client.send(body, batch.docs.len()));
        Ok(Some((batch, request)))
    }

    fn finish(&mut self, batch: InFlight, reply: BulkReply) -> Result<(), SinkError> {
        let count = batch.docs.len() as u64;
        match reply {
            BulkReply::Items(outcomes) => {
                let mut retry = Vec::new();
                let mut sent = 0u64;
                let mut retry_reason = None;
                for (doc, outcome) in batch.docs.into_iter().zip(outcomes) {
                    match outcome {
                        ItemOutcome::Indexed => sent += 1,
                        ItemOutcome::Retry { status, reason } => {
                            retry_reason.get_or_insert(format!("HTTP {status}: {reason}"));
                            retry.push(doc);
                        }
                        ItemOutcome::Rejected {
                            status,
                            kind,
                            error,
                        } => self.dead_letter(&doc, status, &kind, &error),
                    }
                }
                // Retries are on disk before the batch leaves the spool: a crash in between
                // resends (the _id makes that harmless) instead of losing them.
                self.spool.push_front(&retry)?;
                if let Origin::Spool(peeked) = &batch.origin {
                    self.spool.commit(peeked)?;
                }
                metrics::counter!("huatuo_bamai_event_es_sent_total").increment(sent);
                self.status.sent += sent;
                self.status.connected = true;
                self.status.idle = false;
                self.batch_limit = self.config.batch_size;
                if retry.is_empty() {
                    self.backoff.reset();
                    self.status.last_error = None;
                } else {
                    let n = retry.len() as u64;
                    metrics::counter!("huatuo_bamai_event_es_retried_total", "reason" => "item")
                        .increment(n);
                    self.count_spooled(n);
                    self.move_memory_to_spool()?;
                    let delay = self.backoff.fail();
                    self.retry_at = Some(Instant::now() + delay);
                    let reason = retry_reason.unwrap_or_default();
                    tracing::warn!(
                        documents = n,
                        %reason,
                        delay_ms = delay.as_millis() as u64,
                        "elasticsearch sink: items to retry after a backoff"
                    );
                    self.status.last_error = Some(format!("{n} items to retry: {reason}"));
                }
            }
            BulkReply::Unavailable(error) => {
                metrics::counter!("huatuo_bamai_event_es_retried_total", "reason" => "request")
                    .increment(count);
                if let Origin::Memory = batch.origin {
                    self.spool.push_front(&batch.docs)?;
                    self.count_spooled(count);
                }
                self.move_memory_to_spool()?;
                let delay = self.backoff.fail();
                self.retry_at = Some(Instant::now() + delay);
                let address = self.client.address();
                // Log the first failure of an outage, then every tenth attempt.
                if self.backoff.failures == 1 || self.backoff.failures.is_multiple_of(10) {
                    tracing::warn!(
                        %address,
                        %error,
                        attempts = self.backoff.failures,
                        spooled = self.spool.documents(),
                        delay_ms = delay.as_millis() as u64,
                        "elasticsearch unavailable; documents are spooled"
                    );
                }
                self.client.rotate();
                self.status.connected = false;
                self.status.idle = false;
                self.status.last_error = Some(format!("{address}: {error}"));
            }
            BulkReply::Refused { status, message } => {
                self.status.connected = true;
                self.status.idle = false;
                if batch.docs.len() > 1 {
                    // Find the culprit: send halves, down to single documents.
                    self.batch_limit = (batch.docs.len() / 2).max(1);
                    if let Origin::Memory = batch.origin {
                        for doc in batch.docs.into_iter().rev() {
                            self.memory.push_front(doc);
                        }
                        self.memory_since.get_or_insert_with(Instant::now);
                    }
                    tracing::warn!(
                        status,
                        %message,
                        documents = count,
                        "elasticsearch refused a bulk request; splitting it"
                    );
                } else {
                    let error = serde_json::json!({ "reason": message });
                    for doc in &batch.docs {
                        self.dead_letter(doc, status, &format!("http_{status}"), &error);
                    }
                    if let Origin::Spool(peeked) = &batch.origin {
                        self.spool.commit(peeked)?;
                    }
                }
                self.status.last_error = Some(message);
            }
        }
        self.report();
        Ok(())
    }

    fn dead_letter(&mut self, doc: &BulkDoc, status: u16, kind: &str, error: &serde_json::Value) {
        let reason = metric_reason(kind);
        metrics::counter!("huatuo_bamai_event_es_failed_total", "reason" => reason).increment(1);
        self.status.dead_lettered += 1;
        let what = bulk::error_reason(error).unwrap_or_else(|| kind.to_string());
        tracing::warn!(
            id = %doc.id,
            status,
            reason = %what,
            file = %self.dead_letters.path.display(),
            "elasticsearch refused a document; written to the dead-letter file"
        );
        if !self.dead_letters.write(doc, status, kind, error) {
            self.count_dropped(1, "dead-letter file not writable");
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

/// A label value from an error type: `[a-z0-9_]`, at most 64 characters.
fn metric_reason(kind: &str) -> String {
    let reason: String = kind
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if reason.is_empty() {
        "unknown".to_string()
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_reasons_are_label_safe() {
        assert_eq!(
            metric_reason("mapper_parsing_exception"),
            "mapper_parsing_exception"
        );
        assert_eq!(metric_reason("Weird Type!"), "weird_type_");
        assert_eq!(metric_reason(""), "unknown");
    }

    #[test]
    fn a_dead_letter_line_holds_the_document_and_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let letters = DeadLetters {
            path: dir.path().join("sub/dead.ndjson"),
            index: "huatuo_bamai".into(),
        };
        let doc = BulkDoc {
            id: "abc".into(),
            source: r#"{"tracer_id":"abc","x":1}"#.into(),
        };
        let error = serde_json::json!({"type": "mapper_parsing_exception", "reason": "bad"});
        assert!(letters.write(&doc, 400, "mapper_parsing_exception", &error));
        assert!(letters.write(&doc, 400, "x", &serde_json::Value::Null));
        let text = std::fs::read_to_string(&letters.path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["_id"], "abc");
        assert_eq!(lines[0]["status"], 400);
        assert_eq!(lines[0]["error"]["reason"], "bad");
        assert_eq!(lines[0]["document"]["x"], 1);
        assert_eq!(lines[0]["index"], "huatuo_bamai");
    }
}
