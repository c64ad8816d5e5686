//! What one sampler round measures: the agent process's CPU time and the host's capacity.

use std::time::Duration;

/// User + system CPU time of this process (all threads) so far.
pub fn agent_cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPUs online now: the host's capacity is `elapsed × online_cpus` CPU-seconds.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

/// `spent` as a fraction of `elapsed × cpus` of CPU capacity.
pub fn ratio(spent: Duration, elapsed: Duration, cpus: u32) -> f64 {
    let capacity = elapsed.as_secs_f64() * f64::from(cpus.max(1));
    if capacity <= 0.0 {
        return 0.0;
    }
    spent.as_secs_f64() / capacity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_a_fraction_of_all_cpus() {
        let r = ratio(Duration::from_millis(40), Duration::from_secs(2), 2);
        assert!((r - 0.01).abs() < 1e-12);
        assert_eq!(ratio(Duration::from_secs(1), Duration::ZERO, 4), 0.0);
    }

    #[test]
    fn agent_cpu_time_grows_with_work() {
        let before = agent_cpu_time();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(agent_cpu_time() > before);
        assert!(online_cpus() >= 1);
    }
}
