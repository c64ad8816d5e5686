//! Process-wide telemetry plumbing: the Prometheus recorder with upstream's `host`/`region` global
//! labels, and the log filter (reloadable, so `set agent.log_level` works live).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{parse_log_filter, Config};

static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// `host` and `region` labels carried by every series (as upstream).
pub fn global_labels(config: &Config) -> Vec<(String, String)> {
    vec![
        ("host".to_string(), hostname(config)),
        ("region".to_string(), config.agent.region.clone()),
    ]
}

pub fn hostname(config: &Config) -> String {
    if !config.agent.hostname.is_empty() {
        return config.agent.hostname.clone();
    }
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_string())
}

/// Installs the global metrics recorder. Call once per process.
pub fn install_recorder(config: &Config) -> Result<PrometheusHandle, String> {
    // Only agent-internal counters and gauges live here; probe series are published as whole
    // sets (exposition.rs), so nothing needs an idle timeout to expire.
    let mut builder = PrometheusBuilder::new();
    for (key, value) in global_labels(config) {
        builder = builder.add_global_label(key, value);
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe_metrics();
    Ok(handle)
}

fn describe_metrics() {
    use metrics::describe_counter;
    describe_counter!(
        "huatuo_bamai_bpf_link_reattached_total",
        "BPF links found detached from outside and re-attached by the probe."
    );
    describe_counter!(
        "huatuo_bamai_metric_series_dropped_total",
        "Series dropped by the per-family cap (metrics.max_series_per_family)."
    );
    describe_counter!(
        "huatuo_bamai_sampler_decisions_total",
        "Adaptive sampling decisions per probe: action=throttle (divisor raised) or relax (lowered)."
    );
    describe_counter!(
        "huatuo_bamai_collect_errors_total",
        "Collection ticks of a probe that failed (bad input file, map read error)."
    );
    describe_counter!(
        "huatuo_bamai_events_published_total",
        "Event documents published on the event bus, by tracer."
    );
    describe_counter!(
        "huatuo_bamai_event_ring_lost_total",
        "Event records of a probe that never became documents: no room in its BPF ring buffer (ring_full) or a record that did not decode (undecodable)."
    );
    describe_counter!(
        "huatuo_bamai_event_sink_dropped_total",
        "Event documents a sink lost: it fell behind the bus, or its write failed."
    );
    describe_counter!(
        "huatuo_bamai_event_store_written_total",
        "Event documents committed to the embedded store."
    );
    describe_counter!(
        "huatuo_bamai_event_store_purged_total",
        "Event documents the store deleted: past events.retention_days (age) or over events.max_store_mib (size)."
    );
    describe_counter!(
        "huatuo_bamai_event_store_errors_total",
        "Failed writes and purges of the event store (the event_store actor restarts and reopens it)."
    );
    metrics::describe_gauge!(
        "huatuo_bamai_event_store_documents",
        "Event documents in the embedded store."
    );
    metrics::describe_gauge!(
        "huatuo_bamai_event_store_bytes",
        "Bytes of the documents in the embedded store (ids and JSON), what events.max_store_mib caps."
    );
    describe_counter!(
        "huatuo_bamai_event_es_sent_total",
        "Event documents Elasticsearch/OpenSearch indexed."
    );
    describe_counter!(
        "huatuo_bamai_event_es_retried_total",
        "Event documents to send to Elasticsearch again: their item got 429/5xx (item) or the whole request failed (request)."
    );
    describe_counter!(
        "huatuo_bamai_event_es_failed_total",
        "Event documents Elasticsearch refused (4xx other than 429), written to the dead-letter file, by error type."
    );
    describe_counter!(
        "huatuo_bamai_event_es_spooled_total",
        "Event documents written to the Elasticsearch sink's disk spool (cluster unavailable, behind, or a retry)."
    );
    metrics::describe_gauge!(
        "huatuo_bamai_event_es_spool_documents",
        "Event documents waiting in the Elasticsearch sink's disk spool."
    );
    metrics::describe_gauge!(
        "huatuo_bamai_event_es_spool_bytes",
        "Bytes waiting in the Elasticsearch sink's disk spool, what events.elasticsearch.spool_max_mib caps."
    );
    metrics::describe_gauge!(
        "huatuo_bamai_event_es_pending_documents",
        "Event documents the Elasticsearch sink has not delivered yet (spool and memory)."
    );
    metrics::describe_gauge!(
        "huatuo_bamai_event_es_connected",
        "1 when the last request to Elasticsearch was answered, 0 while it is unavailable."
    );
}

/// Installs the log subscriber (stderr). `RUST_LOG` wins over the configured level.
pub fn init_logging(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if tracing_subscriber::registry()
        .with(layer)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

/// Applies a new log level live (from `set agent.log_level` or `reload`).
pub fn apply_log_level(level: &str) {
    if let (Some(handle), Ok(filter)) = (LOG_FILTER.get(), parse_log_filter(level)) {
        let _ = handle.reload(filter);
    }
}
