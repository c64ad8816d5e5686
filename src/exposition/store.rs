//! The latest set of every probe, capped per family and rendered to text when published.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use super::text::{escape_help, format_value, write_labels};
use super::{MetricKind, MetricSet};

/// One family of one probe, already rendered: scrapes only concatenate text.
#[derive(Debug, Clone)]
struct RenderedFamily {
    name: String,
    help: String,
    kind: MetricKind,
    /// Sample lines, global labels included.
    body: String,
}

#[derive(Debug, Clone)]
struct Published {
    families: Vec<RenderedFamily>,
    series: usize,
    success: bool,
    duration: Duration,
}

/// The latest set of every running probe, rendered once when published.
pub struct MetricStore {
    sets: RwLock<BTreeMap<&'static str, Published>>,
    /// `host` / `region`, first on every series.
    global: Vec<(String, String)>,
    max_series_per_family: AtomicUsize,
    warned: Mutex<HashSet<String>>,
}

impl MetricStore {
    pub fn new(max_series_per_family: usize, global: Vec<(String, String)>) -> Self {
        Self {
            sets: RwLock::new(BTreeMap::new()),
            global,
            max_series_per_family: AtomicUsize::new(max_series_per_family),
            warned: Mutex::new(HashSet::new()),
        }
    }

    pub fn set_max_series_per_family(&self, max: usize) {
        self.max_series_per_family.store(max, Ordering::Relaxed);
    }

    /// Replaces `probe`'s set, applying the per-family series cap, and renders it.
    pub fn publish(&self, probe: &'static str, mut set: MetricSet, duration: Duration) {
        let cap = self.max_series_per_family.load(Ordering::Relaxed);
        for family in &mut set.families {
            if family.samples.len() > cap {
                // A histogram is only valid whole (buckets, +Inf, _sum, _count): cut between
                // histograms, never inside one.
                let keep = if family.kind == MetricKind::Histogram {
                    let per = family
                        .samples
                        .iter()
                        .position(|s| s.suffix == "_count")
                        .map_or(1, |i| i + 1);
                    cap / per * per
                } else {
                    cap
                };
                let dropped = family.samples.len() - keep;
                family.samples.truncate(keep);
                metrics::counter!("huatuo_bamai_metric_series_dropped_total", "family" => family.name.clone())
                    .increment(dropped as u64);
                let first = self
                    .warned
                    .lock()
                    .map(|mut w| w.insert(family.name.clone()))
                    .unwrap_or(false);
                if first {
                    tracing::warn!(
                        family = %family.name,
                        cap,
                        dropped,
                        "series cap reached; extra series dropped (metrics.max_series_per_family)"
                    );
                }
            }
        }
        let series = set.series_count();
        let families = set
            .families
            .into_iter()
            .filter(|f| !f.samples.is_empty())
            .map(|family| {
                let mut body = String::with_capacity(family.samples.len() * 160);
                for sample in &family.samples {
                    body.push_str(&family.name);
                    body.push_str(sample.suffix);
                    write_labels(&mut body, &sample.labels, &self.global);
                    let _ = writeln!(body, " {}", format_value(sample.value));
                }
                RenderedFamily {
                    name: family.name,
                    help: family.help,
                    kind: family.kind,
                    body,
                }
            })
            .collect();
        let published = Published {
            families,
            series,
            success: true,
            duration,
        };
        if let Ok(mut sets) = self.sets.write() {
            sets.insert(probe, published);
        }
    }

    /// Marks `probe`'s last collection as failed; what it published before stays.
    pub fn mark_failed(&self, probe: &'static str, duration: Duration) {
        if let Ok(mut sets) = self.sets.write() {
            let entry = sets.entry(probe).or_insert_with(|| Published {
                families: Vec::new(),
                series: 0,
                success: false,
                duration,
            });
            entry.success = false;
            entry.duration = duration;
        }
    }

    /// Drops `probe`'s series (the probe stopped).
    pub fn remove(&self, probe: &'static str) {
        if let Ok(mut sets) = self.sets.write() {
            sets.remove(probe);
        }
    }

    /// Series `probe` exports now (after the cap).
    pub fn series_count(&self, probe: &str) -> Option<usize> {
        self.sets.read().ok()?.get(probe).map(|p| p.series)
    }

    /// Prometheus text of every published family plus upstream's per-collector scrape metrics.
    pub fn render(&self) -> String {
        let Ok(sets) = self.sets.read() else {
            return String::new();
        };
        let size: usize = sets
            .values()
            .flat_map(|p| p.families.iter())
            .map(|f| f.body.len() + f.help.len() + 2 * f.name.len() + 32)
            .sum();
        let mut out = String::with_capacity(size + 4096);
        // Families of the same name from several probes (e.g. the BPF cost families) are
        // rendered as one: Prometheus text allows one HELP/TYPE block per name.
        let mut order: Vec<&str> = Vec::new();
        let mut by_name: std::collections::HashMap<&str, Vec<&RenderedFamily>> =
            std::collections::HashMap::new();
        for published in sets.values() {
            for family in &published.families {
                let entry = by_name.entry(family.name.as_str()).or_default();
                if entry.is_empty() {
                    order.push(family.name.as_str());
                }
                entry.push(family);
            }
        }
        for name in order {
            let families = &by_name[name];
            let first = families[0];
            let _ = writeln!(out, "# HELP {} {}", name, escape_help(&first.help));
            let _ = writeln!(out, "# TYPE {} {}", name, first.kind.as_str());
            for family in families {
                out.push_str(&family.body);
            }
        }
        let global = &self.global;
        let collectors: Vec<(&str, &Published)> = sets.iter().map(|(k, v)| (*k, v)).collect();
        if !collectors.is_empty() {
            out.push_str("# HELP huatuo_bamai_scrape_collector_success 1 if the collector's last run succeeded.\n");
            out.push_str("# TYPE huatuo_bamai_scrape_collector_success gauge\n");
            for (name, p) in &collectors {
                out.push_str("huatuo_bamai_scrape_collector_success");
                write_labels(&mut out, &[("collector", name.to_string())], global);
                let _ = writeln!(out, " {}", u8::from(p.success));
            }
            out.push_str("# HELP huatuo_bamai_scrape_collector_duration_seconds Duration of the collector's last run.\n");
            out.push_str("# TYPE huatuo_bamai_scrape_collector_duration_seconds gauge\n");
            for (name, p) in &collectors {
                out.push_str("huatuo_bamai_scrape_collector_duration_seconds");
                write_labels(&mut out, &[("collector", name.to_string())], global);
                let _ = writeln!(out, " {}", format_value(p.duration.as_secs_f64()));
            }
        }
        out
    }
}
