//! iolatency: block request latency per disk from tp_btf block_rq_issue / block_rq_complete.
//! Upstream's zone counters `huatuo_bamai_iolatency_blkdisk_{q2c,d2c}{disk,zone}` (only
//! requests >= 20 ms: zones 20–30, 30–50, 50–100, 100–200, 200–400, >400 ms) plus real
//! Prometheus histograms of every read/write completion,
//! `huatuo_bamai_iolatency_blkdisk_{q2c,d2c}_seconds{disk}` (log2 buckets from the kernel).

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuHashMap};
use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::containers::MetricScope;
use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::histogram::{log2_us_buckets, LOG2_SLOTS};
use crate::ebpf::{self, Attachment, BpfError, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::watched_cgroups::WatchedCgroups;

const NAME: &str = "iolatency";
const DISK_MAP: &str = "IO_DISK_LATENCY";
const WATCHED_MAP: &str = "IO_WATCHED_CGROUPS";
const CGROUP_MAP: &str = "IO_CGROUP_LATENCY";
pub const IO_ZONES: usize = 6;
const ATTACHMENTS: [Attachment; 2] = [
    Attachment {
        program: "on_block_rq_issue",
        hook: Hook::TpBtf("block_rq_issue"),
    },
    Attachment {
        program: "on_block_rq_complete",
        hook: Hook::TpBtf("block_rq_complete"),
    },
];

/// Mirrors `struct disk_latency` in iolatency.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskLatency {
    pub q2c_zone: [u64; IO_ZONES],
    pub d2c_zone: [u64; IO_ZONES],
    pub q2c_slot: [u64; LOG2_SLOTS],
    pub d2c_slot: [u64; LOG2_SLOTS],
    pub q2c_sum_ns: u64,
    pub d2c_sum_ns: u64,
    pub count: u64,
}

// SAFETY: plain old data, `repr(C)`, no padding (all u64), valid for any bit pattern.
unsafe impl aya::Pod for DiskLatency {}

/// Mirrors `struct cgroup_disk` (the per-container key).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CgroupDisk {
    pub cgroup_id: u64,
    pub dev: u32,
    pub pad: u32,
}

// SAFETY: `repr(C)`, explicit padding field, valid for any bit pattern.
unsafe impl aya::Pod for CgroupDisk {}

/// Mirrors `struct cgroup_latency`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupLatency {
    pub q2c_zone: [u64; IO_ZONES],
    pub d2c_zone: [u64; IO_ZONES],
    pub count: u64,
}

// SAFETY: plain old data, `repr(C)`, all u64.
unsafe impl aya::Pod for CgroupLatency {}

impl Default for DiskLatency {
    fn default() -> Self {
        Self {
            q2c_zone: [0; IO_ZONES],
            d2c_zone: [0; IO_ZONES],
            q2c_slot: [0; LOG2_SLOTS],
            d2c_slot: [0; LOG2_SLOTS],
            q2c_sum_ns: 0,
            d2c_sum_ns: 0,
            count: 0,
        }
    }
}

impl DiskLatency {
    /// Adds another CPU's counters.
    pub fn add(&mut self, other: &DiskLatency) {
        let add = |a: &mut [u64], b: &[u64]| {
            a.iter_mut()
                .zip(b)
                .for_each(|(x, y)| *x = x.wrapping_add(*y))
        };
        add(&mut self.q2c_zone, &other.q2c_zone);
        add(&mut self.d2c_zone, &other.d2c_zone);
        add(&mut self.q2c_slot, &other.q2c_slot);
        add(&mut self.d2c_slot, &other.d2c_slot);
        self.q2c_sum_ns = self.q2c_sum_ns.wrapping_add(other.q2c_sum_ns);
        self.d2c_sum_ns = self.d2c_sum_ns.wrapping_add(other.d2c_sum_ns);
        self.count = self.count.wrapping_add(other.count);
    }
}

/// `maj:min` of a kernel dev_t (major << 20 | minor).
pub fn disk_label(dev: u32) -> String {
    format!("{}:{}", dev >> 20, dev & 0xf_ffff)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Block I/O latency per disk, Q2C and D2C (tp_btf block_rq_issue, block_rq_complete): upstream's
/// zone counters (>= 20 ms) and Prometheus histograms of every read/write completion.
pub struct IolatencyConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
}

impl Default for IolatencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(IolatencyConfig, "iolatency");

pub struct IolatencyProbe {
    programs: BpfProgramSet,
    /// Containers' block cgroup ids counted per container (IO_WATCHED_CGROUPS).
    watched: WatchedCgroups,
}

impl Probe for IolatencyProbe {
    const NAME: &'static str = NAME;
    type Settings = IolatencyConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let bpf = ebpf::load(NAME, crate::bpf_object!("iolatency"), &[])?;
        let programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        Ok(Self {
            programs,
            // Upstream's iolatency exports every container type (pod.Containers()).
            watched: WatchedCgroups::new(
                ctx.containers.clone(),
                WATCHED_MAP,
                |c| c.io_cgroup_id,
                MetricScope::All,
            ),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let disks = self.read_disks()?;
        let zones = [
            ("huatuo_bamai_iolatency_blkdisk_q2c", "Block requests per disk whose queue-to-complete latency fell in a zone (0:20-30ms 1:30-50ms 2:50-100ms 3:100-200ms 4:200-400ms 5:>400ms); cumulative count."),
            ("huatuo_bamai_iolatency_blkdisk_d2c", "Block requests per disk whose driver-to-complete latency fell in a zone (0:20-30ms 1:30-50ms 2:50-100ms 3:100-200ms 4:200-400ms 5:>400ms); cumulative count."),
        ];
        for (index, (name, help)) in zones.iter().enumerate() {
            let family = out.gauge(name, help);
            for (dev, lat) in &disks {
                let counts = if index == 0 {
                    &lat.q2c_zone
                } else {
                    &lat.d2c_zone
                };
                for (zone, count) in counts.iter().enumerate() {
                    family.push(
                        vec![("disk", disk_label(*dev)), ("zone", zone.to_string())],
                        *count as f64,
                    );
                }
            }
        }
        let q2c = out.histogram(
            "huatuo_bamai_iolatency_blkdisk_q2c_seconds",
            "Queue-to-complete latency of block reads and writes per disk.",
        );
        for (dev, lat) in &disks {
            let buckets = log2_us_buckets(&lat.q2c_slot);
            q2c.push_histogram(
                vec![("disk", disk_label(*dev))],
                &buckets,
                lat.q2c_sum_ns as f64 / 1e9,
                lat.count,
            );
        }
        let d2c = out.histogram(
            "huatuo_bamai_iolatency_blkdisk_d2c_seconds",
            "Driver-to-complete latency of block reads and writes per disk.",
        );
        for (dev, lat) in &disks {
            let buckets = log2_us_buckets(&lat.d2c_slot);
            d2c.push_histogram(
                vec![("disk", disk_label(*dev))],
                &buckets,
                lat.d2c_sum_ns as f64 / 1e9,
                lat.count,
            );
        }
        self.collect_containers(out)
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl IolatencyProbe {
    /// Upstream's per-container zones, plus a completion count per container and disk.
    fn collect_containers(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let containers = self.watched.sync(&mut self.programs)?;
        let err = |e: aya::maps::MapError| BpfError::MapRead {
            probe: NAME,
            map: CGROUP_MAP,
            reason: e.to_string(),
        };
        let data = self
            .programs
            .ebpf_mut()
            .map_mut(CGROUP_MAP)
            .ok_or(BpfError::MissingMap {
                probe: NAME,
                map: CGROUP_MAP,
            })?;
        let mut map = PerCpuHashMap::<&mut MapData, CgroupDisk, CgroupLatency>::try_from(data)
            .map_err(err)?;
        let mut per_cgroup: BTreeMap<(u64, u32), CgroupLatency> = BTreeMap::new();
        let mut stale = Vec::new();
        for entry in map.iter() {
            let (key, per_cpu) = entry.map_err(err)?;
            if !self.watched.ids().contains(&key.cgroup_id) {
                stale.push(key);
                continue;
            }
            let total = per_cgroup.entry((key.cgroup_id, key.dev)).or_default();
            for cpu in per_cpu.iter() {
                for zone in 0..IO_ZONES {
                    total.q2c_zone[zone] = total.q2c_zone[zone].wrapping_add(cpu.q2c_zone[zone]);
                    total.d2c_zone[zone] = total.d2c_zone[zone].wrapping_add(cpu.d2c_zone[zone]);
                }
                total.count = total.count.wrapping_add(cpu.count);
            }
        }
        for key in stale {
            let _ = map.remove(&key);
        }
        let zone_families = [
            ("huatuo_bamai_iolatency_container_blkdisk_q2c", "A container's block requests per disk whose queue-to-complete latency fell in a zone (as the host family); cumulative count."),
            ("huatuo_bamai_iolatency_container_blkdisk_d2c", "A container's block requests per disk whose driver-to-complete latency fell in a zone (as the host family); cumulative count."),
        ];
        for (index, (name, help)) in zone_families.iter().enumerate() {
            let family = out.gauge(name, help);
            for container in containers.iter() {
                for ((_, dev), lat) in per_cgroup
                    .range((container.io_cgroup_id, 0)..=(container.io_cgroup_id, u32::MAX))
                {
                    let zones = if index == 0 {
                        &lat.q2c_zone
                    } else {
                        &lat.d2c_zone
                    };
                    let disk = disk_label(*dev);
                    for (zone, count) in zones.iter().enumerate() {
                        let labels =
                            container.labels_with(&[("disk", &disk), ("zone", &zone.to_string())]);
                        family.push(labels, *count as f64);
                    }
                }
            }
        }
        let completions = out.counter(
            "huatuo_bamai_iolatency_container_blkdisk_completions_total",
            "Block reads and writes completed per container and disk (attributed by the bio's block cgroup).",
        );
        for container in containers.iter() {
            for ((_, dev), lat) in
                per_cgroup.range((container.io_cgroup_id, 0)..=(container.io_cgroup_id, u32::MAX))
            {
                completions.push(
                    container.labels_with(&[("disk", &disk_label(*dev))]),
                    lat.count as f64,
                );
            }
        }
        Ok(())
    }

    fn read_disks(&self) -> Result<BTreeMap<u32, DiskLatency>, ProbeError> {
        let err = |e: aya::maps::MapError| BpfError::MapRead {
            probe: NAME,
            map: DISK_MAP,
            reason: e.to_string(),
        };
        let data = self
            .programs
            .ebpf()
            .map(DISK_MAP)
            .ok_or(BpfError::MissingMap {
                probe: NAME,
                map: DISK_MAP,
            })?;
        let map = PerCpuHashMap::<&MapData, u32, DiskLatency>::try_from(data).map_err(err)?;
        let mut disks = BTreeMap::new();
        for entry in map.iter() {
            let (dev, per_cpu) = entry.map_err(err)?;
            let mut total = DiskLatency::default();
            for cpu in per_cpu.iter() {
                total.add(cpu);
            }
            disks.insert(dev, total);
        }
        Ok(disks)
    }
}

#[cfg(test)]
mod tests;
