//! The kernel's load average arithmetic (`calc_load` in kernel/sched/loadavg.c): an exponential
//! moving average in 11-bit fixed point. Upstream's dload applies the 1-minute factor once per
//! 10 s sample (not every 5 s as the kernel does), and so do we, so thresholds carry over.

/// Bits of fraction (`FSHIFT`).
pub const FSHIFT: u32 = 11;
/// 1.0 in fixed point (`FIXED_1`).
pub const FIXED_1: u64 = 1 << FSHIFT;
/// `1 / exp(5 s / 1 min)` in fixed point (`EXP_1`).
pub const EXP_1: u64 = 1884;

/// One step: `load` (fixed point) moves towards `active` tasks (a plain count).
pub fn calc_load(load: u64, active: u64) -> u64 {
    let active = active.saturating_mul(FIXED_1);
    let mut next = load
        .saturating_mul(EXP_1)
        .saturating_add(active.saturating_mul(FIXED_1 - EXP_1));
    // Round up while rising, as the kernel does, so a steady load reaches its value.
    if active >= load {
        next = next.saturating_add(FIXED_1 - 1);
    }
    next / FIXED_1
}

/// A fixed-point load as a float (what `/proc/loadavg` prints).
pub fn to_f64(load: u64) -> f64 {
    load as f64 / FIXED_1 as f64
}

/// The two averages dload keeps per container: all runnable + D tasks, and D tasks alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadPair {
    pub load: u64,
    pub dload: u64,
}

impl LoadPair {
    pub fn step(&mut self, nr_running: u64, nr_uninterruptible: u64) {
        self.load = calc_load(self.load, nr_running + nr_uninterruptible);
        self.dload = calc_load(self.dload, nr_uninterruptible);
    }
}
