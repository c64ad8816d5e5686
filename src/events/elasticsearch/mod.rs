//! The Elasticsearch/OpenSearch sink: every event document is indexed with `_bulk` under
//! `_id` = `tracer_id` (a replay never makes a second document). Per-item results are read:
//! 429/5xx items are retried with exponential backoff, other refusals go to a dead-letter file.
//! While the cluster is unreachable, documents wait in a bounded on-disk spool, replayed in
//! order (before newer documents) when it is back, also after an agent restart. The
//! `elasticsearch` service actor (`src/actors/es_sink.rs`) runs it; docs/events.md describes the
//! guarantees.
//!
//! * `bulk`: request body and per-item response parsing
//! * `client`: one HTTP request and its classification
//! * `spool`: the on-disk queue
//! * `backoff`: retry delays
//! * `sink`: the loop that ties them together
//! * `status`: the line `ctl status` shows

pub mod backoff;
pub mod bulk;
pub mod client;
pub mod config;
pub mod sink;
pub mod spool;
pub mod status;

pub use bulk::BulkDoc;
pub use client::BulkClient;
pub use config::ElasticsearchConfig;
pub use sink::BulkSink;
pub use spool::Spool;
pub use status::SinkStatus;
