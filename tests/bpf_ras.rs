//! Root test of the ras probe on the real kernel: it attaches to every hardware error
//! tracepoint this kernel has and exports a zero counter per attached type. No hardware error
//! can be provoked here (the decoders are unit-tested on payloads built from tracefs formats).

mod common;

use huatuo_bamai::core::Probe;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::ras::{available_kinds, RasConfig, RasProbe};

#[test]
fn attaches_where_the_tracepoints_exist_and_counts_per_type() {
    if !common::bpf_available("bpf_ras") {
        return;
    }
    let ctx = common::host_probe_context();
    let kinds = available_kinds(&ctx.sysfs_root).expect("formats parse");
    let started = RasProbe::start(&RasConfig::default(), &ctx);
    if kinds.is_empty() {
        let err = started.err().expect("inactive without tracepoints");
        assert!(err.is_unsupported(), "{err}");
        return;
    }
    let mut probe = started.expect("ras attaches");
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    let family = set
        .families
        .iter()
        .find(|f| f.name == "huatuo_bamai_ras_hw_err_total")
        .expect("counter exported");
    assert_eq!(
        family.samples.len(),
        kinds.len(),
        "one series per attached type"
    );
    assert!(family.samples.iter().all(|s| s.value == 0.0));
    let links = probe.programs().expect("BPF programs").link_ids();
    assert_eq!(links.len(), kinds.len());
}
