//! Every part of the production agent, in start order: services, then probes. Adding a part is
//! its folder plus one line here; its config section, status row, `ctl enable` and docs follow
//! from its entry.

use std::sync::Arc;

use crate::actors::probe::part as probe;
use crate::actors::{containers, control, elasticsearch, event_store, http, pyroscope, sampler};
use crate::config::SectionSpec;
use crate::core::PartEntry;
use crate::probes::*;

pub fn parts() -> Vec<PartEntry> {
    vec![
        // Services: always on.
        http::part(),
        containers::part(),
        event_store::part(),
        elasticsearch::part(),
        pyroscope::part(),
        sampler::part(),
        control::part(),
        // Probes: `[probes.<name>]`, `enabled` switches them.
        probe::<softirq::SoftirqProbe>(),
        probe::<runqlat::RunqlatProbe>(),
        probe::<iolatency::IolatencyProbe>(),
        probe::<loadavg::LoadavgProbe>(),
        probe::<memory_reclaim::MemoryReclaimProbe>(),
        probe::<cpu_util::CpuUtilProbe>(),
        probe::<cpu_stat::CpuStatProbe>(),
        probe::<memory_vmstat::MemoryVmstatProbe>(),
        probe::<memory_events::MemoryEventsProbe>(),
        probe::<memory_buddyinfo::MemoryBuddyinfoProbe>(),
        probe::<netdev::NetdevProbe>(),
        probe::<netdev_hw::NetdevHwProbe>(),
        probe::<netstat::NetstatProbe>(),
        probe::<sockstat::SockstatProbe>(),
        probe::<arp::ArpProbe>(),
        probe::<diskio::DiskioProbe>(),
        probe::<mountpoint::MountpointProbe>(),
        probe::<pressure::PressureProbe>(),
        probe::<qdisc::QdiscProbe>(),
        probe::<hungtask::HungtaskProbe>(),
        probe::<softlockup::SoftlockupProbe>(),
        probe::<ras::RasProbe>(),
        probe::<oom::OomProbe>(),
        probe::<dropwatch::DropwatchProbe>(),
        probe::<tcp_retransmit::TcpRetransmitProbe>(),
        probe::<net_rx_latency::NetRxLatencyProbe>(),
        probe::<sched_tick::SchedTickProbe>(),
        probe::<netdev_events::NetdevEventsProbe>(),
        probe::<netdev_txqueue_timeout::NetdevTxqueueTimeoutProbe>(),
        probe::<lacp::LacpProbe>(),
        probe::<profile::ProfileProbe>(),
        probe::<dload::DloadProbe>(),
        probe::<waitrate::WaitrateProbe>(),
        probe::<nettrace::NettraceProbe>(),
        probe::<cpusys::CpusysProbe>(),
        probe::<cpuidle::CpuidleProbe>(),
        probe::<memburst::MemburstProbe>(),
        probe::<iotracing::IotracingProbe>(),
    ]
}

/// The config sections the parts own, in registry order (the order of the generated file).
pub fn sections() -> Arc<[SectionSpec]> {
    parts().into_iter().filter_map(|p| p.section).collect()
}

/// Names of the registered probes.
pub fn probe_names() -> Vec<&'static str> {
    parts()
        .iter()
        .filter(|p| p.kind == crate::core::PartKind::Probe)
        .map(|p| p.name)
        .collect()
}
