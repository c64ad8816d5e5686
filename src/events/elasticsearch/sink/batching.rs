//! What the sink sends next: documents taken from the bus wait in memory (or, once anything is
//! spooled or memory is full, behind the spool), and the next batch comes from the spool first.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{BulkSink, InFlight, Origin, Sending, SinkError};
use crate::events::elasticsearch::bulk::{self, BulkDoc};
use crate::events::EventDocument;

impl BulkSink {
    pub(super) fn intake(&mut self, documents: Vec<Arc<EventDocument>>) -> Result<(), SinkError> {
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

    pub(super) fn move_memory_to_spool(&mut self) -> Result<(), SinkError> {
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
    pub(super) fn next_request(&mut self) -> Result<Option<(InFlight, Sending)>, SinkError> {
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
}
