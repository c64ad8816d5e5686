//! Root test of the netdev_txqueue_timeout probe on the real kernel: it attaches to
//! net:net_dev_xmit_timeout where the kernel has it and exports its counters. A TX timeout
//! cannot be provoked here: it needs a driver with a TX watchdog (`ndo_tx_timeout`) whose queue
//! stays stopped, and this VM has only virtio_net (its one NIC carries the machine's traffic)
//! and virtual devices without a watchdog (veth, ifb, macvlan; no netdevsim). The decoder is
//! unit-tested on records laid out by the real format file.

mod common;

use huatuo_bamai::core::Probe;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::netdev_txqueue_timeout::{
    tracepoint_format, NetdevTxqueueTimeoutConfig, NetdevTxqueueTimeoutProbe,
};

#[test]
fn attaches_where_the_tracepoint_exists() {
    if !common::bpf_available("bpf_netdev_txqueue_timeout") {
        return;
    }
    let ctx = common::host_probe_context();
    let format = tracepoint_format(&ctx.sysfs_root).expect("format parses");
    let started = NetdevTxqueueTimeoutProbe::start(&NetdevTxqueueTimeoutConfig::default(), &ctx);
    let Some(format) = format else {
        let err = started.err().expect("inactive without the tracepoint");
        assert!(err.is_unsupported(), "{err}");
        return;
    };
    assert!(format.fields.iter().any(|f| f.name == "queue_index"));
    let mut probe = started.expect("netdev_txqueue_timeout attaches");
    assert_eq!(probe.programs().expect("BPF").link_ids().len(), 1);
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    let family = |name: &str| set.families.iter().find(|f| f.name == name);
    let errors = family("huatuo_bamai_netdev_txqueue_timeout_errors_total").expect("errors");
    assert_eq!(errors.samples[0].value, 0.0);
    // No timeout happened: the counter family is there with no device yet.
    let total = family("huatuo_bamai_netdev_txqueue_timeout_total").expect("counter");
    assert!(total.samples.is_empty(), "{:?}", total.samples);
}
