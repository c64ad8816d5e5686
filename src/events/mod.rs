//! Kernel events: the document every event and autotracing capture becomes (upstream's
//! envelope), the bounded bus that carries documents from probes to sinks (embedded store,
//! Elasticsearch, live stream) and the embedded store. A slow sink lags and counts what it
//! missed; it never blocks a probe. The `events` CLI that reads them back is `crate::cli::events`.

pub mod document;
pub mod elasticsearch;
pub mod store;
pub mod time;
pub mod upstream_shape;

pub use document::{EventDocument, TracerType};
pub use store::{EventQuery, EventStore};

use std::sync::Arc;

/// Capacity of the event bus: a sink more than this many documents behind loses the oldest.
pub const BUS_CAPACITY: usize = 4096;

/// Publishing side of the event bus, cloned into every probe's context.
#[derive(Clone)]
pub struct EventSender(tokio::sync::broadcast::Sender<Arc<EventDocument>>);

impl EventSender {
    pub fn new() -> Self {
        Self(tokio::sync::broadcast::channel(BUS_CAPACITY).0)
    }

    /// Publishes a document; returns how many sinks received it (0 when none is subscribed).
    pub fn publish(&self, document: EventDocument) -> usize {
        metrics::counter!("huatuo_bamai_events_published_total", "tracer" => document.tracer_name.clone())
            .increment(1);
        self.0.send(Arc::new(document)).unwrap_or(0)
    }

    /// A new subscription that sees documents published from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<EventDocument>> {
        self.0.subscribe()
    }
}

impl Default for EventSender {
    fn default() -> Self {
        Self::new()
    }
}
