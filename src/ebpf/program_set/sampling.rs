//! Adaptive sampling of a program set: the knob map the programs read, and the duty cycle that
//! detaches the links for the off-slots.

use std::time::Duration;

use super::BpfProgramSet;
use crate::ebpf::attach::{attach_one, link_id};
use crate::ebpf::load::kernel_btf;
use crate::ebpf::BpfError;

/// The map `HUATUO_SAMPLING_KNOB` (huatuo.h) declares: one `struct huatuo_sampling`.
pub const SAMPLING_MAP: &str = "HUATUO_SAMPLING";
/// Largest 1-in-N the programs sample events at; a larger divisor also duty-cycles the links
/// (attached one slot in `divisor / MAX_EVENT_DIVISOR`): below this the programs' own fixed
/// cost per event is what is left, which only not running them removes.
pub const MAX_EVENT_DIVISOR: u32 = 1024;

/// Length of one duty-cycle slot for a cycle of `duty` slots: the cycle spans one second when it
/// can, so every second (the sampler's round) holds one attached slot and the overhead is even
/// from second to second; slots never get shorter than 50 ms (two attach syscalls per cycle).
pub fn duty_slot(duty: u32) -> Duration {
    Duration::from_millis((1000 / u64::from(duty.max(1))).max(50))
}

/// `struct huatuo_sampling` of huatuo.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SamplingKnob {
    divisor: u32,
    weight: u32,
    since_ns: u64,
}

// SAFETY: plain integers, `repr(C)` with no padding (4 + 4 + 8 bytes).
unsafe impl aya::Pod for SamplingKnob {}

/// Adaptive-sampling state of a program set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sampling {
    /// Overall divisor: events 1-in-`event` × attached one slot in `duty`.
    pub(super) divisor: u32,
    pub(super) duty: u32,
    /// Slots since the duty cycle started.
    pub(super) ticks: u64,
    /// Links dropped for the current off-slots of the duty cycle.
    pub(super) paused: bool,
}

impl BpfProgramSet {
    /// The adaptive-sampling divisor in force (1 = every event), or `None` when the probe's
    /// programs cannot be throttled.
    pub fn sampling_divisor(&self) -> Option<u32> {
        self.sampling.map(|s| s.divisor)
    }

    /// Sets the adaptive-sampling divisor. Up to [`MAX_EVENT_DIVISOR`] the programs keep 1 event
    /// in `divisor`; beyond it they also run only one tick in `divisor / MAX_EVENT_DIVISOR`
    /// ([`BpfProgramSet::duty_cycle_tick`]). A kept event counts for the whole divisor.
    pub fn set_sampling_divisor(&mut self, divisor: u32) -> Result<(), BpfError> {
        let Some(mut sampling) = self.sampling else {
            return Err(BpfError::MissingMap {
                probe: self.probe,
                map: SAMPLING_MAP,
            });
        };
        let divisor = divisor.max(1);
        let event = divisor.min(MAX_EVENT_DIVISOR);
        let duty = divisor.div_ceil(event).max(1);
        // Begins taken under the old weight would be counted with the new one: void them.
        let knob = SamplingKnob {
            divisor: event,
            weight: event.saturating_mul(duty),
            since_ns: monotonic_ns(),
        };
        self.write_knob(knob)?;
        sampling.divisor = knob.weight;
        sampling.duty = duty;
        sampling.ticks = 0;
        self.sampling = Some(sampling);
        if duty == 1 && sampling.paused {
            // On failure, leave the links to the link watcher rather than detached for good.
            if let Err(e) = self.resume() {
                self.set_paused(false);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The duty cycle in force: attached one slot in K (1 = always attached).
    pub fn duty(&self) -> u32 {
        self.sampling.map_or(1, |s| s.duty)
    }

    /// Called every duty slot ([`duty_slot`]): with a duty cycle, the programs stay attached one
    /// slot in `duty` and are detached for the others (no cost at all then).
    pub fn duty_cycle_tick(&mut self) -> Result<(), BpfError> {
        let Some(mut sampling) = self.sampling else {
            return Ok(());
        };
        if sampling.duty <= 1 {
            return Ok(());
        }
        sampling.ticks += 1;
        let on = sampling.ticks % u64::from(sampling.duty) == 0;
        self.sampling = Some(sampling);
        match (on, sampling.paused) {
            (true, true) => self.resume(),
            (false, false) => {
                for attached in &mut self.attached {
                    // Closing a tracepoint link's fd detaches it.
                    drop(attached.link.take());
                }
                self.set_paused(true);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// True while a duty cycle holds the programs detached.
    pub fn paused(&self) -> bool {
        self.sampling.is_some_and(|s| s.paused)
    }

    fn set_paused(&mut self, paused: bool) {
        if let Some(sampling) = self.sampling.as_mut() {
            sampling.paused = paused;
        }
    }

    /// Re-attaches after a duty-cycle pause; begins taken before it are void from now on.
    fn resume(&mut self) -> Result<(), BpfError> {
        let mut knob = self.read_knob()?;
        knob.since_ns = monotonic_ns();
        self.write_knob(knob)?;
        let btf = kernel_btf(self.probe)?;
        for attached in &mut self.attached {
            if attached.link.is_none() {
                let link = attach_one(self.probe, &mut self.bpf, btf, &attached.attachment, false)?;
                attached.link_id = link_id(self.probe, &attached.attachment, &link)?;
                attached.link = Some(link);
            }
        }
        self.set_paused(false);
        Ok(())
    }

    fn knob_map(
        &mut self,
    ) -> Result<aya::maps::Array<&mut aya::maps::MapData, SamplingKnob>, BpfError> {
        let probe = self.probe;
        let data = self.bpf.map_mut(SAMPLING_MAP).ok_or(BpfError::MissingMap {
            probe,
            map: SAMPLING_MAP,
        })?;
        aya::maps::Array::try_from(data).map_err(|e| BpfError::MapRead {
            probe,
            map: SAMPLING_MAP,
            reason: e.to_string(),
        })
    }

    fn read_knob(&mut self) -> Result<SamplingKnob, BpfError> {
        let probe = self.probe;
        self.knob_map()?.get(&0, 0).map_err(|e| BpfError::MapRead {
            probe,
            map: SAMPLING_MAP,
            reason: e.to_string(),
        })
    }

    fn write_knob(&mut self, knob: SamplingKnob) -> Result<(), BpfError> {
        let probe = self.probe;
        self.knob_map()?
            .set(0, knob, 0)
            .map_err(|e| BpfError::MapRead {
                probe,
                map: SAMPLING_MAP,
                reason: e.to_string(),
            })
    }
}

/// `CLOCK_MONOTONIC` in ns: the clock of `bpf_ktime_get_ns()`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}
