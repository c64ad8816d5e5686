//! What a probe builds each tick: a set of typed metric families and their series.

use super::text::format_value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
    Histogram,
    /// For upstream names promtool would reject with a type (a gauge ending in `_total`).
    Untyped,
}

impl MetricKind {
    pub(super) fn as_str(self) -> &'static str {
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
