//! Collected state for `/metrics`: each probe publishes a complete [`MetricSet`] every tick and
//! the HTTP exporter renders the latest sets. Replacing a probe's whole set makes series of a
//! removed container (or a disabled probe) disappear at once, scrapes never re-read files, and a
//! per-family series cap bounds memory whatever the host throws at us.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
    Histogram,
    /// For upstream names promtool would reject with a type (a gauge ending in `_total`).
    Untyped,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
            MetricKind::Histogram => "histogram",
            MetricKind::Untyped => "untyped",
        }
    }
}

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Appended to the family name: `_bucket`, `_sum`, `_count` for histograms, else empty.
    pub suffix: &'static str,
    pub labels: Labels,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub samples: Vec<Sample>,
}

impl Family {
    /// Adds one series.
    pub fn push(&mut self, labels: Labels, value: f64) -> &mut Self {
        self.samples.push(Sample {
            suffix: "",
            labels,
            value,
        });
        self
    }

    /// Adds one histogram: cumulative `buckets` as (upper bound, count) in ascending order,
    /// plus `_sum` and `_count` (the `+Inf` bucket is `count`).
    pub fn push_histogram(
        &mut self,
        labels: Labels,
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) -> &mut Self {
        let mut cumulative = 0u64;
        for (bound, n) in buckets {
            cumulative += n;
            let mut with_le = labels.clone();
            with_le.push(("le", format_value(*bound)));
            self.samples.push(Sample {
                suffix: "_bucket",
                labels: with_le,
                value: cumulative as f64,
            });
        }
        let mut inf = labels.clone();
        inf.push(("le", "+Inf".to_string()));
        self.samples.push(Sample {
            suffix: "_bucket",
            labels: inf,
            value: count as f64,
        });
        self.samples.push(Sample {
            suffix: "_sum",
            labels: labels.clone(),
            value: sum,
        });
        self.samples.push(Sample {
            suffix: "_count",
            labels,
            value: count as f64,
        });
        self
    }
}

/// Everything one probe exports, built afresh each tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSet {
    pub families: Vec<Family>,
}

impl MetricSet {
    fn family(&mut self, name: &str, help: &str, kind: MetricKind) -> &mut Family {
        let index = match self.families.iter().position(|f| f.name == name) {
            Some(index) => index,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[index]
    }

    /// A gauge. Upstream names a few gauges `*_total` (e.g. `cpu_util_total`); promtool rejects
    /// that for gauges, so such names are rendered `untyped` and keep their upstream name.
    pub fn gauge(&mut self, name: &str, help: &str) -> &mut Family {
        let kind = if name.ends_with("_total") {
            MetricKind::Untyped
        } else {
            MetricKind::Gauge
        };
        self.family(name, help, kind)
    }

    /// A histogram family (fill it with [`Family::push_histogram`]); the name has no suffix.
    pub fn histogram(&mut self, name: &str, help: &str) -> &mut Family {
        self.family(name, help, MetricKind::Histogram)
    }

    /// An untyped series: only for upstream-compatible names that no type fits (e.g. a gauge
    /// named `*_total`).
    pub fn untyped(&mut self, name: &str, help: &str) -> &mut Family {
        self.family(name, help, MetricKind::Untyped)
    }

    /// A counter; by Prometheus convention its name ends in `_total`.
    pub fn counter(&mut self, name: &str, help: &str) -> &mut Family {
        self.family(name, help, MetricKind::Counter)
    }

    pub fn series_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

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

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_labels(out: &mut String, labels: &[(&'static str, String)], global: &[(String, String)]) {
    if labels.is_empty() && global.is_empty() {
        return;
    }
    out.push('{');
    let mut first = true;
    let own = labels.iter().map(|(k, v)| (*k, v.as_str()));
    let global = global.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in global.chain(own) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{key}=\"{}\"", escape_value(value));
    }
    out.push('}');
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global() -> Vec<(String, String)> {
        vec![("host".into(), "h".into()), ("region".into(), "r".into())]
    }

    #[test]
    fn renders_families_with_global_labels_first() {
        let store = MetricStore::new(100, global());
        let mut set = MetricSet::default();
        set.gauge("huatuo_bamai_x", "X.")
            .push(vec![("zone", "0".into())], 3.0)
            .push(vec![("zone", "1".into())], 0.5);
        store.publish("p", set, Duration::from_millis(2));
        let text = store.render();
        assert!(
            text.starts_with("# HELP huatuo_bamai_x X.\n# TYPE huatuo_bamai_x gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("huatuo_bamai_x{host=\"h\",region=\"r\",zone=\"0\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("huatuo_bamai_x{host=\"h\",region=\"r\",zone=\"1\"} 0.5\n"),
            "{text}"
        );
        assert!(text.contains(
            "huatuo_bamai_scrape_collector_success{host=\"h\",region=\"r\",collector=\"p\"} 1"
        ));
    }

    #[test]
    fn republishing_replaces_series_and_remove_drops_them() {
        let store = MetricStore::new(100, Vec::new());
        let mut set = MetricSet::default();
        set.gauge("huatuo_bamai_c", "C.")
            .push(vec![("container_name", "gone".into())], 1.0);
        store.publish("p", set, Duration::ZERO);
        store.publish("p", MetricSet::default(), Duration::ZERO);
        assert!(!store.render().contains("gone"));
        store.remove("p");
        assert_eq!(store.render(), "");
    }

    #[test]
    fn cap_bounds_series_per_family() {
        let store = MetricStore::new(3, Vec::new());
        let mut set = MetricSet::default();
        let family = set.gauge("huatuo_bamai_many", "Many.");
        for i in 0..10 {
            family.push(vec![("i", i.to_string())], 1.0);
        }
        store.publish("p", set, Duration::ZERO);
        assert_eq!(store.series_count("p"), Some(3));
    }

    #[test]
    fn cap_never_cuts_a_histogram_in_half() {
        let store = MetricStore::new(10, Vec::new());
        let mut set = MetricSet::default();
        let family = set.histogram("huatuo_bamai_h_seconds", "H.");
        for disk in ["a", "b", "c"] {
            // 2 buckets + Inf + sum + count = 5 samples per histogram.
            family.push_histogram(vec![("disk", disk.into())], &[(0.1, 1), (0.2, 1)], 0.3, 2);
        }
        store.publish("p", set, Duration::ZERO);
        assert_eq!(store.series_count("p"), Some(10), "two whole histograms");
        let text = store.render();
        assert!(
            text.contains("huatuo_bamai_h_seconds_count{disk=\"b\"} 2"),
            "{text}"
        );
        assert!(!text.contains("disk=\"c\""), "{text}");
    }

    #[test]
    fn failure_keeps_previous_series_and_reports_it() {
        let store = MetricStore::new(10, Vec::new());
        let mut set = MetricSet::default();
        set.gauge("huatuo_bamai_kept", "Kept.").push(vec![], 7.0);
        store.publish("p", set, Duration::ZERO);
        store.mark_failed("p", Duration::ZERO);
        let text = store.render();
        assert!(text.contains("huatuo_bamai_kept 7"), "{text}");
        assert!(
            text.contains("huatuo_bamai_scrape_collector_success{collector=\"p\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn renders_histograms_cumulatively() {
        let mut set = MetricSet::default();
        set.histogram("huatuo_bamai_h_seconds", "H.")
            .push_histogram(
                vec![("disk", "7:0".into())],
                &[(0.001, 2), (0.002, 3)],
                0.0075,
                6,
            );
        let store = MetricStore::new(100, Vec::new());
        store.publish("p", set, Duration::ZERO);
        let text = store.render();
        for line in [
            "# TYPE huatuo_bamai_h_seconds histogram",
            "huatuo_bamai_h_seconds_bucket{disk=\"7:0\",le=\"0.001\"} 2",
            "huatuo_bamai_h_seconds_bucket{disk=\"7:0\",le=\"0.002\"} 5",
            "huatuo_bamai_h_seconds_bucket{disk=\"7:0\",le=\"+Inf\"} 6",
            "huatuo_bamai_h_seconds_sum{disk=\"7:0\"} 0.0075",
            "huatuo_bamai_h_seconds_count{disk=\"7:0\"} 6",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn same_family_from_two_probes_renders_once() {
        let store = MetricStore::new(100, Vec::new());
        for probe in ["a", "b"] {
            let mut set = MetricSet::default();
            set.counter("huatuo_bamai_shared_total", "Shared.")
                .push(vec![("probe", probe.into())], 1.0);
            store.publish(probe, set, Duration::ZERO);
        }
        let text = store.render();
        assert_eq!(
            text.matches("# HELP huatuo_bamai_shared_total").count(),
            1,
            "{text}"
        );
        assert!(text.contains("huatuo_bamai_shared_total{probe=\"a\"} 1\nhuatuo_bamai_shared_total{probe=\"b\"} 1\n"), "{text}");
    }

    #[test]
    fn escapes_label_values() {
        let mut out = String::new();
        write_labels(&mut out, &[("k", "a\"b\\c\nd".into())], &[]);
        assert_eq!(out, "{k=\"a\\\"b\\\\c\\nd\"}");
    }
}
