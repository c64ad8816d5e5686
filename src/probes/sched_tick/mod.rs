//! sched_tick: scheduler tick gaps (interrupts held off, lost ticks). Every tick of every CPU is
//! seen on tp_btf timer/hrtimer_expire_entry (the tick timer's function from kallsyms), NO_HZ
//! stopped periods are excluded with timer/tick_stop and the tick_sched state; an interval of
//! at least `interval_threshold_ns` is counted as `huatuo_bamai_sched_tick_total` and, up to
//! `max_events_per_cpu_per_second`, stored as a `sched_tick` document with upstream's fields
//! (interval, threshold, comm/pid of the interrupted task, cpu, symbolised kernel stack).

mod record;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

pub use record::{stack_text, SchedTickData, TickRecord, STACK_DEPTH};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::exposition::MetricSet;
use crate::probes::common::event_ring::{self, EventRing};
use crate::probes::common::ksyms::{symbol_address, Symbolizer};

const NAME: &str = "sched_tick";
const EVENTS_MAP: &str = "SCHED_TICK_EVENTS";
pub const COUNT_MAP: &str = "SCHED_TICK_COUNT";
const SUPPRESSED_MAP: &str = "SCHED_TICK_SUPPRESSED";
/// Indexes of SCHED_TICK_COUNT (COUNT_* of sched_tick.bpf.c).
pub const COUNT_TICKS: u32 = 0;
pub const COUNT_GAPS: u32 = 1;
pub const COUNT_NOHZ: u32 = 2;
/// Records published per collect at most; the rest wait in the ring.
const MAX_RECORDS_PER_TICK: usize = 4096;
/// The tick timer's function: `tick_nohz_handler` since Linux 6.9, `tick_sched_timer` before.
pub const TICK_FUNCTIONS: [&str; 2] = ["tick_nohz_handler", "tick_sched_timer"];
/// tick_stop first: a tick must never be measured across a stop the program did not see.
const ATTACHMENTS: [Attachment; 2] = [
    Attachment {
        program: "on_tick_stop",
        hook: Hook::TpBtf("tick_stop"),
    },
    Attachment {
        program: "on_hrtimer_expire_entry",
        hook: Hook::TpBtf("hrtimer_expire_entry"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Event: scheduler tick gaps (a CPU that held interrupts off or lost ticks), from tp_btf
/// timer/hrtimer_expire_entry on the tick timer and timer/tick_stop -> `sched_tick` documents
/// (tick_interval_ns, comm/pid of the interrupted task, cpu, kernel stack) and
/// huatuo_bamai_sched_tick_total. NO_HZ periods (tick stopped in idle) are not gaps. On by
/// default, as upstream: one short program per tick and CPU.
pub struct SchedTickConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Ring buffer drain period: a gap is published within one interval.
    pub interval_ms: u64,
    /// A tick interval this long or longer is a gap, in ns (upstream's
    /// EventTracing.SchedTick.IntervalThreshold). A tick is 1/CONFIG_HZ (4 ms at HZ=250).
    pub interval_threshold_ns: u64,
    /// In-kernel rate limit: documents per CPU per second (upstream: 10; 0 = no limit). Every
    /// gap is still counted; the rest count as suppressed.
    pub max_events_per_cpu_per_second: u32,
}

impl Default for SchedTickConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            interval_threshold_ns: 10_000_000,
            max_events_per_cpu_per_second: 10,
        }
    }
}

crate::probe_settings!(SchedTickConfig, "sched_tick", |c: &SchedTickConfig| {
    if c.interval_threshold_ns == 0 {
        return Err(
            "interval_threshold_ns must be at least 1 (every tick interval would be a gap)".into(),
        );
    }
    Ok(())
});

/// The address of the tick timer's function in a kallsyms text, or why there is none.
pub fn tick_function(kallsyms: &str) -> Result<(&'static str, u64), String> {
    TICK_FUNCTIONS
        .iter()
        .find_map(|name| symbol_address(kallsyms, name).map(|addr| (*name, addr)))
        .ok_or_else(|| {
            format!(
                "none of {} in kallsyms (or kallsyms hides addresses: kernel.kptr_restrict): the \
                 scheduler tick timer cannot be recognised",
                TICK_FUNCTIONS.join(", ")
            )
        })
}

/// Low and high 32 bits (the loader sets 32-bit globals).
fn halves(value: u64) -> (u32, u32) {
    (value as u32, (value >> 32) as u32)
}

pub struct SchedTickProbe {
    programs: BpfProgramSet,
    ring: EventRing,
    ctx: ProbeContext,
    threshold_ns: u64,
    symbolizer: Symbolizer,
}

impl Probe for SchedTickProbe {
    const NAME: &'static str = NAME;
    const ROLES: crate::core::probe::Roles = crate::core::probe::Roles::EVENTS;
    type Settings = SchedTickConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let kallsyms_path = ctx.procfs("kallsyms");
        let kallsyms =
            std::fs::read_to_string(&kallsyms_path).map_err(|source| ProbeError::Read {
                probe: NAME,
                path: kallsyms_path.display().to_string(),
                source,
            })?;
        let (_, tick_fn) = tick_function(&kallsyms).map_err(|reason| ProbeError::Unsupported {
            probe: NAME,
            reason,
        })?;
        let (tick_fn_lo, tick_fn_hi) = halves(tick_fn);
        let (threshold_lo, threshold_hi) = halves(settings.interval_threshold_ns);
        let globals = [
            ("tick_fn_lo", tick_fn_lo),
            ("tick_fn_hi", tick_fn_hi),
            ("threshold_lo", threshold_lo),
            ("threshold_hi", threshold_hi),
            ("max_per_sec", settings.max_events_per_cpu_per_second),
        ];
        let bpf = ebpf::load(NAME, crate::bpf_object!("sched_tick"), &globals)?;
        let mut programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        let ring = EventRing::take(NAME, &mut programs, EVENTS_MAP)?;
        Ok(Self {
            programs,
            ring,
            ctx: ctx.clone(),
            threshold_ns: settings.interval_threshold_ns,
            symbolizer: Symbolizer::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let records = self.ring.drain(MAX_RECORDS_PER_TICK, TickRecord::decode);
        if !records.is_empty() {
            let frames: Vec<u64> = records
                .iter()
                .flat_map(|r| r.stack.iter().copied())
                .collect();
            self.symbolizer
                .resolve(&self.ctx.procfs("kallsyms"), &frames);
        }
        for record in records {
            let data = record.data(self.threshold_ns, &self.symbolizer);
            let document = event_ring::document_at(
                &self.ctx,
                NAME,
                None,
                0,
                serde_json::to_value(data).unwrap_or_default(),
                record.boot_ns,
            );
            self.ctx.events.publish(document);
        }
        self.ring
            .account_losses(NAME, &self.programs, SUPPRESSED_MAP, 1)?;
        out.counter(
            "huatuo_bamai_sched_tick_total",
            "Scheduler tick intervals of at least sched_tick.interval_threshold_ns (NO_HZ periods excluded), all CPUs; cumulative.",
        )
        .push(vec![], self.programs.per_cpu_sum(COUNT_MAP, COUNT_GAPS)? as f64);
        out.counter(
            "huatuo_bamai_sched_tick_suppressed_total",
            "Tick gaps counted but not stored: over sched_tick.max_events_per_cpu_per_second, sampled out, or the ring buffer was full.",
        )
        .push(
            vec![],
            (self.programs.per_cpu_sum(SUPPRESSED_MAP, 0)?
                + self.programs.per_cpu_sum(SUPPRESSED_MAP, 1)?) as f64,
        );
        out.counter(
            "huatuo_bamai_sched_tick_ticks_total",
            "Scheduler ticks seen (the tick timer's expiries), all CPUs; cumulative.",
        )
        .push(
            vec![],
            self.programs.per_cpu_sum(COUNT_MAP, COUNT_TICKS)? as f64,
        );
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

#[cfg(test)]
mod tests;
