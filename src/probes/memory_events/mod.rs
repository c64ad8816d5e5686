//! memory_events: each container's memory events → `huatuo_bamai_memory_events_container_<key>`
//! (gauges as upstream). cgroup v2: `memory.events` (low, high, max, oom, oom_kill,
//! oom_group_kill). cgroup v1 has no `memory.events` on mainline kernels: it is read when a vendor
//! kernel provides it (as upstream does), and `oom_kill` / `under_oom` from `memory.oom_control`
//! and `failcnt` from `memory.failcnt` are added (see docs/metrics/memory_events.md).

use std::path::{Path, PathBuf};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::MetricScope;
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::file;
use crate::probes::common::keyed_file::{parse_flat_keyed, sanitize_key};
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "memory_events";
const PREFIX: &str = "huatuo_bamai_memory_events_container_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// container memory.events -> huatuo_bamai_memory_events_container_<key> (v2: low, high, max, oom,
/// oom_kill, oom_group_kill; v1: oom_kill, under_oom from memory.oom_control, failcnt from memory.failcnt).
pub struct MemoryEventsConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// Event keys to export (exact, `prefix*`, `*suffix`, `*part*`); empty = all.
    pub included: Vec<String>,
    /// Event keys never exported (wins over `included`).
    pub excluded: Vec<String>,
}

impl Default for MemoryEventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            included: Vec::new(),
            excluded: Vec::new(),
        }
    }
}

impl MemoryEventsConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Wildcard)
            .include("included", &self.included)?
            .exclude("excluded", &self.excluded)
    }

    fn check(&self) -> Result<(), String> {
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(
    MemoryEventsConfig,
    "memory_events",
    MemoryEventsConfig::check
);

/// `memory.failcnt`: one integer.
fn parse_failcnt(text: &str) -> Result<f64, String> {
    let raw = text.trim();
    if raw.is_empty() {
        return Err("empty file".to_string());
    }
    raw.parse::<u64>()
        .map(|v| v as f64)
        .map_err(|_| format!("`{raw}` is not an integer"))
}

/// cgroup v1 event keys derived from `memory.oom_control` (the `oom_kill_disable` setting is
/// not an event and is left out).
fn oom_control_events(entries: Vec<(&str, f64)>) -> impl Iterator<Item = (&str, f64)> {
    entries
        .into_iter()
        .filter(|(key, _)| matches!(*key, "oom_kill" | "under_oom"))
}

pub struct MemoryEventsProbe {
    ctx: ProbeContext,
    filter: NameFilter,
    warned: WarnOnce,
}

impl MemoryEventsProbe {
    fn problem(&mut self, path: &Path, reason: &str) {
        let key = path.display().to_string();
        if self.warned.first(&key) {
            tracing::warn!(probe = NAME, path = %key, %reason, "memory events file skipped");
        }
    }

    /// Parses a keyed file; a problem is logged once and gives `None`.
    fn keyed(&mut self, path: &Path, text: &str) -> Option<Vec<(String, f64)>> {
        match parse_flat_keyed(text) {
            Ok(entries) => Some(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
            Err(reason) => {
                self.problem(path, &reason);
                None
            }
        }
    }

    /// The event keys of one container's memory cgroup at `dir`, or `Err(())` when a file
    /// was unreadable or malformed and nothing was read (already logged).
    fn container_events(&mut self, dir: &Path) -> Result<Vec<(String, f64)>, ()> {
        let mut events: Vec<(String, f64)> = Vec::new();
        let mut failed = false;
        let events_path = dir.join("memory.events");
        match file::read_optional(NAME, &events_path) {
            Ok(Some(text)) => match self.keyed(&events_path, &text) {
                Some(entries) => events = entries,
                None => failed = true,
            },
            // Normal on cgroup v1; on v2 the container is gone or has no memory controller.
            Ok(None) => {}
            Err(error) => {
                self.problem(&events_path, &error.to_string());
                failed = true;
            }
        }
        if !self.ctx.cgroup.is_v2() {
            let mut derived: Vec<(String, f64)> = Vec::new();
            let oom_path = dir.join("memory.oom_control");
            match file::read_optional(NAME, &oom_path) {
                Ok(Some(text)) => match parse_flat_keyed(&text) {
                    Ok(entries) => {
                        derived.extend(oom_control_events(entries).map(|(k, v)| (k.to_string(), v)))
                    }
                    Err(reason) => {
                        self.problem(&oom_path, &reason);
                        failed = true;
                    }
                },
                Ok(None) => {}
                Err(error) => {
                    self.problem(&oom_path, &error.to_string());
                    failed = true;
                }
            }
            let failcnt_path = dir.join("memory.failcnt");
            match file::read_optional(NAME, &failcnt_path) {
                Ok(Some(text)) => match parse_failcnt(&text) {
                    Ok(value) => derived.push(("failcnt".to_string(), value)),
                    Err(reason) => {
                        self.problem(&failcnt_path, &reason);
                        failed = true;
                    }
                },
                Ok(None) => {}
                Err(error) => {
                    self.problem(&failcnt_path, &error.to_string());
                    failed = true;
                }
            }
            // A vendor kernel's own memory.events wins for keys it already has.
            for (key, value) in derived {
                if !events.iter().any(|(k, _)| *k == key) {
                    events.push((key, value));
                }
            }
        }
        if failed && events.is_empty() {
            return Err(());
        }
        Ok(events)
    }

    fn push(&self, out: &mut MetricSet, labels: &Labels, events: &[(String, f64)]) {
        for (key, value) in events {
            if !self.filter.matches(key) {
                continue;
            }
            let name = format!("{PREFIX}{}", sanitize_key(key));
            out.gauge(&name, &format!("memory events {key}"))
                .push(labels.clone(), *value);
        }
    }
}

impl Probe for MemoryEventsProbe {
    const NAME: &'static str = NAME;
    type Settings = MemoryEventsConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let filter = settings.filter().map_err(invalid_config(NAME))?;
        Ok(Self {
            ctx: ctx.clone(),
            filter,
            warned: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let containers = self.ctx.containers.borrow().clone();
        let mut first_failure: Option<PathBuf> = None;
        let mut read_any = false;
        for container in containers.for_metrics(MetricScope::Normal) {
            let dir = self.ctx.cgroup.dir("memory", &container.cgroup_path);
            match self.container_events(&dir) {
                Ok(events) => {
                    read_any = true;
                    self.push(out, &container.labels(), &events);
                }
                Err(()) => {
                    first_failure.get_or_insert(dir);
                }
            }
        }
        self.warned.end_tick();
        match first_failure {
            Some(dir) if !read_any => Err(file::malformed(
                NAME,
                &dir,
                "no container's memory events could be read".to_string(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
