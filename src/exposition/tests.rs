use std::time::Duration;

use super::text::write_labels;
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
    assert!(
        text.contains(
            "huatuo_bamai_shared_total{probe=\"a\"} 1\nhuatuo_bamai_shared_total{probe=\"b\"} 1\n"
        ),
        "{text}"
    );
}

#[test]
fn escapes_label_values() {
    let mut out = String::new();
    write_labels(&mut out, &[("k", "a\"b\\c\nd".into())], &[]);
    assert_eq!(out, "{k=\"a\\\"b\\\\c\\nd\"}");
}
