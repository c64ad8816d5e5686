//! softirq: raise→entry latency per CPU and vector, exported as upstream's
//! `huatuo_bamai_softirq_latency{cpuid,type,zone}` (zones <10µs, <100µs, <1ms, ≥1ms), for the
//! online CPUs only (as upstream; per-CPU maps have a slot for every possible CPU).

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::warn_once::WarnOnce;
use crate::probes::cpu_util::cpu_files::parse_cpu_list;

const NAME: &str = "softirq";
const ZONES: u32 = 4;
const LATENCY_MAP: &str = "SOFTIRQ_LATENCY";
const HISTOGRAM_MAP: &str = "SOFTIRQ_HISTOGRAM";
/// Entries per vector in SOFTIRQ_HISTOGRAM: log2 slots then the ns sum.
const HISTOGRAM_STRIDE: u32 = crate::ebpf::histogram::LOG2_SLOTS as u32 + 1;
/// Kernel softirq vector names, indexed by vector number (include/linux/interrupt.h).
pub const VECTOR_NAMES: [&str; 10] = [
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU",
];
const ATTACHMENTS: [Attachment; 2] = [
    Attachment {
        program: "on_softirq_raise",
        hook: Hook::TpBtf("softirq_raise"),
    },
    Attachment {
        program: "on_softirq_entry",
        hook: Hook::TpBtf("softirq_entry"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// softirq raise -> entry latency (tp_btf irq/softirq_raise, irq/softirq_entry).
pub struct SoftirqConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Map read period.
    pub interval_ms: u64,
    /// Vectors exported as `type`; upstream exports NET_RX and NET_TX only.
    pub vectors: Vec<String>,
}

impl Default for SoftirqConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            vectors: vec!["NET_RX".into(), "NET_TX".into()],
        }
    }
}

crate::probe_settings!(SoftirqConfig, "softirq", SoftirqConfig::check_vectors);

impl SoftirqConfig {
    fn check_vectors(&self) -> Result<(), String> {
        for name in &self.vectors {
            vector_number(name)?;
        }
        Ok(())
    }
}

/// Vector number of a softirq name (`NET_RX` → 3).
pub fn vector_number(name: &str) -> Result<u32, String> {
    VECTOR_NAMES
        .iter()
        .position(|v| v.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
        .ok_or_else(|| {
            format!(
                "unknown softirq vector `{name}`; known: {}",
                VECTOR_NAMES.join(", ")
            )
        })
}

/// Index into the kernel's SOFTIRQ_LATENCY array.
pub fn latency_index(vector: u32, zone: u32) -> u32 {
    vector * ZONES + zone
}

pub struct SoftirqProbe {
    programs: BpfProgramSet,
    vectors: Vec<u32>,
    /// `<sysfs>/devices/system/cpu/online`, read each tick (CPUs come and go).
    online_path: PathBuf,
    warned: WarnOnce,
}

/// Whether `cpu` is in the online ranges; every CPU when they are unknown (`None`).
fn is_online(online: Option<&[std::ops::RangeInclusive<u32>]>, cpu: usize) -> bool {
    online.is_none_or(|ranges| {
        u32::try_from(cpu).is_ok_and(|cpu| ranges.iter().any(|r| r.contains(&cpu)))
    })
}

impl Probe for SoftirqProbe {
    const NAME: &'static str = NAME;
    type Settings = SoftirqConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let vectors = settings
            .vectors
            .iter()
            .filter_map(|v| vector_number(v).ok())
            .collect();
        let bpf = ebpf::load(NAME, crate::bpf_object!("softirq"), &[])?;
        let programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        Ok(Self {
            programs,
            vectors,
            online_path: ctx.sysfs_root.join("devices/system/cpu/online"),
            warned: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        // Unreadable or malformed (logged once): every possible CPU is exported.
        let online = match file::read_parsed(NAME, &self.online_path, parse_cpu_list) {
            Ok(ranges) => Some(ranges),
            Err(e) => {
                self.warned.warn_error(&e);
                None
            }
        };
        self.warned.end_tick();
        let family = out.gauge(
            "huatuo_bamai_softirq_latency",
            "Softirq raise-to-entry latency events per CPU, vector (type) and zone (0:<10us 1:<100us 2:<1ms 3:>=1ms); cumulative count.",
        );
        for &vector in &self.vectors {
            let kind = VECTOR_NAMES[vector as usize];
            for zone in 0..ZONES {
                let per_cpu = self
                    .programs
                    .per_cpu_u64(LATENCY_MAP, latency_index(vector, zone))?;
                for (cpu, count) in per_cpu.iter().enumerate() {
                    if !is_online(online.as_deref(), cpu) {
                        continue;
                    }
                    let labels = vec![
                        ("cpuid", cpu.to_string()),
                        ("type", kind.to_string()),
                        ("zone", zone.to_string()),
                    ];
                    family.push(labels, *count as f64);
                }
            }
        }
        let histograms = out.histogram(
            "huatuo_bamai_softirq_latency_seconds",
            "Softirq raise-to-entry latency per vector, all CPUs (log2 buckets from the kernel).",
        );
        for &vector in &self.vectors {
            let h = self
                .programs
                .log2_histogram(HISTOGRAM_MAP, vector * HISTOGRAM_STRIDE)?;
            let labels = vec![("type", VECTOR_NAMES[vector as usize].to_string())];
            histograms.push_histogram(labels, &h.buckets(), h.sum_seconds(), h.count());
        }
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

#[cfg(test)]
mod tests;
