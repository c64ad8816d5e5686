//! memory_vmstat: `/proc/vmstat` → `huatuo_bamai_memory_vmstat_<key>` (host) and each
//! container's `memory.stat` → `huatuo_bamai_memory_vmstat_container_<key>`, gauges as upstream,
//! filtered by include/exclude key lists (upstream's default regular expressions).

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::MetricScope;
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::keyed_file::{parse_flat_keyed, sanitize_key};
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "memory_vmstat";
const HOST_PREFIX: &str = "huatuo_bamai_memory_vmstat_";
const CONTAINER_PREFIX: &str = "huatuo_bamai_memory_vmstat_container_";

/// Upstream's default `[MetricCollector.Vmstat] IncludedOnHost`, verbatim: an unanchored regular
/// expression, so `nr_dirty` also takes `nr_dirty_threshold`, `pgscan_direct` also
/// `pgscan_direct_throttle`.
const HOST_INCLUDED: &str = "re:allocstall|nr_active_anon|nr_active_file|nr_boost_pages|nr_dirty|nr_free_pages|nr_inactive_anon|nr_inactive_file|nr_kswapd_boost|nr_mlock|nr_shmem|nr_slab_reclaimable|nr_slab_unreclaimable|nr_unevictable|nr_writeback|numa_pages_migrated|pgdeactivate|pgrefill|pgscan_direct|pgscan_kswapd|pgsteal_direct|pgsteal_kswapd";

/// Upstream's default `IncludedOnContainer`, verbatim (its `pgscan_global*`/`*cswapd` keys exist on
/// Didi's kernel only); unanchored, so `dirty`/`writeback` also take cgroup v2's
/// `file_dirty`/`file_writeback`, `active_anon` also `inactive_anon`.
const CONTAINER_INCLUDED: &str = "re:active_anon|active_file|dirty|inactive_anon|inactive_file|pgdeactivate|pgrefill|pgscan_direct|pgscan_kswapd|pgsteal_direct|pgsteal_kswapd|shmem|unevictable|writeback|pgscan_globaldirect|pgscan_globalkswapd|pgscan_cswapd|pgsteal_cswapd|pgsteal_globaldirect|pgsteal_globalkswapd";

/// Upstream's `ExcludedOnHost` / `ExcludedOnContainer`: drops cgroup v1's hierarchical
/// `total_<key>` repeats.
const EXCLUDED: &str = "re:total";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/vmstat -> huatuo_bamai_memory_vmstat_<key>; container memory.stat ->
/// huatuo_bamai_memory_vmstat_container_<key>. Key patterns: exact key, "prefix*", "*suffix",
/// "*part*", "*" or "re:<regex>"; an empty included list means every key; excluded wins.
pub struct MemoryVmstatConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// `/proc/vmstat` keys to export (exact, `prefix*`, `*suffix`, `*part*`, `re:<regex>`);
    /// empty = all. Default: upstream's IncludedOnHost regex (unanchored, as upstream).
    pub host_included: Vec<String>,
    /// `/proc/vmstat` keys never exported (wins over `host_included`).
    pub host_excluded: Vec<String>,
    /// Container `memory.stat` keys to export; empty = all. Default: upstream's
    /// IncludedOnContainer regex.
    pub container_included: Vec<String>,
    /// Container `memory.stat` keys never exported.
    pub container_excluded: Vec<String>,
}

impl Default for MemoryVmstatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            host_included: vec![HOST_INCLUDED.to_string()],
            host_excluded: vec![EXCLUDED.to_string()],
            container_included: vec![CONTAINER_INCLUDED.to_string()],
            container_excluded: vec![EXCLUDED.to_string()],
        }
    }
}

impl MemoryVmstatConfig {
    fn check(&self) -> Result<(), String> {
        self.filters().map(|_| ())
    }

    fn filters(&self) -> Result<(NameFilter, NameFilter), String> {
        let host = NameFilter::new(Syntax::Wildcard)
            .include("host_included", &self.host_included)?
            .exclude("host_excluded", &self.host_excluded)?;
        let container = NameFilter::new(Syntax::Wildcard)
            .include("container_included", &self.container_included)?
            .exclude("container_excluded", &self.container_excluded)?;
        Ok((host, container))
    }
}

crate::probe_settings!(
    MemoryVmstatConfig,
    "memory_vmstat",
    MemoryVmstatConfig::check
);

pub struct MemoryVmstatProbe {
    ctx: ProbeContext,
    host_path: PathBuf,
    host_filter: NameFilter,
    container_filter: NameFilter,
    warned: WarnOnce,
}

impl MemoryVmstatProbe {
    /// Host series from `/proc/vmstat`; `Err` if the file cannot be read or parsed.
    fn collect_host(&self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let text = file::read(NAME, &self.host_path)?;
        let entries = parse_flat_keyed(&text)
            .map_err(|reason| file::malformed(NAME, &self.host_path, reason))?;
        for (key, value) in entries {
            if !self.host_filter.matches(key) {
                continue;
            }
            let name = format!("{HOST_PREFIX}{}", sanitize_key(key));
            out.gauge(&name, &format!("/proc/vmstat {key}"))
                .push(vec![], value);
        }
        Ok(())
    }

    /// Container series from each container's `memory.stat`; returns how many containers
    /// were read. A container whose file is missing or malformed is skipped (logged once).
    fn collect_containers(&mut self, out: &mut MetricSet) -> usize {
        let containers = self.ctx.containers.borrow().clone();
        let mut collected = 0;
        for container in containers.for_metrics(MetricScope::Normal) {
            let path = self
                .ctx
                .cgroup
                .dir("memory", &container.cgroup_path)
                .join("memory.stat");
            let text = match file::read_optional(NAME, &path) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    // Container gone since the last scan, or memory controller not enabled.
                    if self.warned.first("memory.stat missing") {
                        tracing::warn!(
                            probe = NAME,
                            path = %path.display(),
                            "memory.stat missing (container gone, or memory controller not \
                             enabled for it); further missing files are logged at debug"
                        );
                    } else {
                        tracing::debug!(probe = NAME, path = %path.display(), "memory.stat missing");
                    }
                    continue;
                }
                Err(error) => {
                    self.warned.warn_error(&error);
                    continue;
                }
            };
            let entries = match parse_flat_keyed(&text) {
                Ok(entries) => entries,
                Err(reason) => {
                    self.warned
                        .warn_error(&file::malformed(NAME, &path, reason));
                    continue;
                }
            };
            let labels = container.labels();
            for (key, value) in entries {
                if !self.container_filter.matches(key) {
                    continue;
                }
                let name = format!("{CONTAINER_PREFIX}{}", sanitize_key(key));
                out.gauge(&name, &format!("cgroup memory.stat {key}"))
                    .push(labels.clone(), value);
            }
            collected += 1;
        }
        collected
    }
}

impl Probe for MemoryVmstatProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryVmstatConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let (host_filter, container_filter) = settings.filters().map_err(invalid_config(NAME))?;
        Ok(Self {
            ctx: ctx.clone(),
            host_path: ctx.procfs("vmstat"),
            host_filter,
            container_filter,
            warned: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let host = self.collect_host(out);
        let containers = self.collect_containers(out);
        self.warned.end_tick_with_host(host, containers)
    }
}

#[cfg(test)]
mod tests;
