//! OTLP/HTTP (protobuf) export of spans on a thread of its own: the probe offers spans to a
//! bounded queue and never waits; the thread sends them in batches. A full queue or a failed
//! export (the collector is down) loses spans, and each loss is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("nettrace: OTLP exporter for {endpoint}: {reason}")]
    Build { endpoint: String, reason: String },
    #[error("nettrace: cannot start the OTLP export thread: {0}")]
    Thread(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Full URL of the collector's traces receiver, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    pub queue_size: usize,
    pub batch_size: usize,
    pub batch_delay: Duration,
    pub timeout: Duration,
    pub host: String,
}

/// Counters of the export path (cumulative).
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    /// Offered while the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// In a batch the collector did not take.
    pub dropped_export_failed: AtomicU64,
    pub failed_batches: AtomicU64,
}

pub struct SpanExport {
    queue: Option<SyncSender<SpanData>>,
    pub stats: Arc<ExportStats>,
}

impl SpanExport {
    /// Builds the exporter on the export thread (its blocking HTTP client must live outside
    /// the agent's async runtime) and returns once it is ready.
    pub fn start(settings: ExportSettings) -> Result<Self, ExportError> {
        let (queue, spans) = mpsc::sync_channel(settings.queue_size.max(1));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stats = Arc::new(ExportStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("nettrace-otlp".into())
            .spawn(move || {
                let exporter = match build(&settings) {
                    Ok(exporter) => {
                        let _ = ready_tx.send(Ok(()));
                        exporter
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                run(exporter, spans, &settings, &thread_stats);
            })
            .map_err(ExportError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                queue: Some(queue),
                stats,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ExportError::Thread(std::io::Error::other(
                "the export thread ended while starting",
            ))),
        }
    }

    /// Queues a span without waiting; a full queue drops it (counted).
    pub fn offer(&self, span: SpanData) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for SpanExport {
    fn drop(&mut self) {
        // The thread sends what is queued, then ends.
        self.queue.take();
    }
}

fn build(settings: &ExportSettings) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .build()
        .map_err(|e| ExportError::Build {
            endpoint: settings.endpoint.clone(),
            reason: e.to_string(),
        })?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name("huatuo-bamai")
            .with_attributes([KeyValue::new("host.name", settings.host.clone())])
            .build(),
    );
    Ok(exporter)
}

fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    spans: Receiver<SpanData>,
    settings: &ExportSettings,
    stats: &ExportStats,
) {
    let mut batch = Vec::with_capacity(settings.batch_size);
    let mut open = true;
    while open {
        // Wait for the first span, then fill the batch until it is full or the delay is up.
        match spans.recv() {
            Ok(span) => batch.push(span),
            Err(_) => break,
        }
        let deadline = Instant::now() + settings.batch_delay;
        while batch.len() < settings.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            match spans.recv_timeout(left) {
                Ok(span) => batch.push(span),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let n = batch.len() as u64;
        match futures_executor::block_on(exporter.export(std::mem::take(&mut batch))) {
            Ok(()) => {
                stats.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                stats.dropped_export_failed.fetch_add(n, Ordering::Relaxed);
                if stats
                    .failed_batches
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(100)
                {
                    tracing::warn!(probe = "nettrace", spans = n, error = %e, "OTLP export failed; spans dropped");
                }
            }
        }
    }
    let _ = exporter.shutdown();
}
