//! What the sink does with the cluster's answer to a batch: indexed items are done, items to
//! retry go back to the head of the spool, refused ones go to the dead-letter file, and a
//! request refused as a whole is split.

use tokio::time::Instant;

use super::dead_letters::metric_reason;
use super::{BulkSink, InFlight, Origin, SinkError};
use crate::events::elasticsearch::bulk::{self, BulkDoc, ItemOutcome};
use crate::events::elasticsearch::client::BulkReply;

impl BulkSink {
    pub(super) fn finish(&mut self, batch: InFlight, reply: BulkReply) -> Result<(), SinkError> {
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
}
