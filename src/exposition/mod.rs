//! Collected state for `/metrics`: each probe publishes a complete [`MetricSet`] every tick and
//! the HTTP exporter renders the latest sets. Replacing a probe's whole set makes series of a
//! removed container (or a disabled probe) disappear at once, scrapes never re-read files, and a
//! per-family series cap bounds memory whatever the host throws at us.

mod metric_set;
mod store;
mod text;

pub use metric_set::{Family, Labels, MetricKind, MetricSet, Sample};
pub use store::MetricStore;

#[cfg(test)]
mod tests;
