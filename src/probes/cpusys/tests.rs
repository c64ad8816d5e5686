use super::*;
use crate::probes::testutil::host_only_context;

/// Writes a `/proc/stat` whose `cpu` line has `system` of `total` jiffies (the rest idle).
fn write_stat(dir: &std::path::Path, system: u64, total: u64) {
    let text = format!(
        "cpu  0 0 {system} {} 0 0 0 0 0 0\ncpu0 0 0 0 0\n",
        total - system
    );
    std::fs::write(dir.join("stat"), text).expect("write stat");
}

#[test]
fn a_sys_spike_without_the_profile_probe_is_a_document_saying_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_stat(dir.path(), 0, 1000);
    let ctx = host_only_context(dir.path());
    let mut rx = ctx.events.subscribe();
    let mut probe = CpusysProbe::start(&CpusysConfig::default(), &ctx).expect("start");
    // 5 % sys, then 60 % sys: above 45 and up 55 points.
    write_stat(dir.path(), 50, 2000);
    probe.collect(&mut MetricSet::default()).expect("collect");
    assert!(rx.try_recv().is_err(), "no fire on a quiet sample");
    write_stat(dir.path(), 650, 3000);
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    let document = rx.try_recv().expect("a document");
    assert_eq!(document.tracer_name, "cpusys");
    assert_eq!(document.tracer_type, TracerType::Autotracing);
    let data = &document.tracer_data;
    assert_eq!(data["system_percent"], 60.0);
    assert_eq!(data["system_percent_delta"], 55.0);
    assert_eq!(data["system_percent_threshold"], 45.0);
    assert_eq!(data["system_percent_delta_threshold"], 20.0);
    assert_eq!(data["flamedata"], serde_json::json!([]));
    let why = data["capture_error"].as_str().expect("capture_error");
    assert!(why.contains("probes.profile"), "{why}");

    // Another spike inside the cooldown: quiet.
    write_stat(dir.path(), 650, 4000);
    probe.collect(&mut MetricSet::default()).expect("collect");
    write_stat(dir.path(), 1450, 5000);
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    assert!(rx.try_recv().is_err(), "fired inside the cooldown");
    let captures = set
        .families
        .iter()
        .find(|f| f.name == "huatuo_bamai_cpusys_captures_total")
        .map(|f| f.samples[0].value);
    assert_eq!(captures, Some(1.0));
}

#[test]
fn thresholds_are_checked() {
    let bad = CpusysConfig {
        system_percent: 150.0,
        ..Default::default()
    };
    assert!(validate(&bad).unwrap_err().contains("system_percent"));
    let bad = CpusysConfig {
        capture_secs: 0,
        ..Default::default()
    };
    assert!(validate(&bad).unwrap_err().contains("capture_secs"));
    assert!(validate(&CpusysConfig::default()).is_ok());
}
