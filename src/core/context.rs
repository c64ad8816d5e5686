//! The shared, read-only context handed to every part the supervisor starts.

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;

use super::probe::ProbeContext;
use super::status::StatusBoard;
use crate::config::{Config, ConfigSource};
use crate::containers::{CgroupLayout, ContainerSet};
use crate::exposition::MetricStore;

pub struct AgentContext {
    pub source: ConfigSource,
    pub prometheus: PrometheusHandle,
    /// Collected metric sets of every probe, rendered by `/metrics`.
    pub store: Arc<MetricStore>,
    /// Publisher of the container set (kept here so it outlives discovery restarts).
    pub containers_tx: tokio::sync::watch::Sender<Arc<ContainerSet>>,
    /// The event bus: event probes publish, sinks subscribe.
    pub events: crate::events::EventSender,
    /// The open event store, for queries (`GET /v1/events`). The `event_store` actor owns the
    /// database, puts it here once open and takes it out when it stops; empty meanwhile.
    pub event_store: crate::events::store::StoreSlot,
    /// The profile bus: the profile probe publishes finished windows; exporters subscribe.
    pub profiles: crate::profiling::ProfileBus,
    /// The profile probe's on-demand captures, for `GET /v1/profile`; empty while it is off.
    pub captures: super::capture::CaptureSlot,
    /// Every part's state and details, published by the supervisor and the parts.
    pub status: StatusBoard,
    pub started: Instant,
}

impl AgentContext {
    pub fn new(source: ConfigSource, prometheus: PrometheusHandle, config: &Config) -> Self {
        Self::started_at(source, prometheus, config, Instant::now())
    }

    pub fn started_at(
        source: ConfigSource,
        prometheus: PrometheusHandle,
        config: &Config,
        started: Instant,
    ) -> Self {
        let (containers_tx, _) = crate::containers::channel();
        Self {
            source,
            prometheus,
            store: Arc::new(MetricStore::new(
                config.metrics.max_series_per_family,
                crate::telemetry::global_labels(config),
            )),
            containers_tx,
            events: crate::events::EventSender::new(),
            event_store: Default::default(),
            profiles: Default::default(),
            captures: Default::default(),
            status: StatusBoard::new(started),
            started,
        }
    }

    /// What a probe may read: roots, cgroup layout, the live container set.
    pub fn probe_context(&self, config: &Config) -> ProbeContext {
        ProbeContext {
            procfs_root: config.agent.procfs_root.clone(),
            sysfs_root: config.agent.sysfs_root.clone(),
            cgroup: CgroupLayout::detect(&config.agent.sysfs_root),
            containers: self.containers_tx.subscribe(),
            events: self.events.clone(),
            profiles: self.profiles.clone(),
            captures: self.captures.clone(),
            hostname: crate::telemetry::hostname(config),
            region: config.agent.region.clone(),
        }
    }
}
