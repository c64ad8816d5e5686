//! Exponential backoff between attempts at a cluster that failed: the delay doubles from
//! `initial` up to `max`, less up to a quarter at random so that many agents coming back after
//! one outage do not all hit the cluster in the same instant.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// Consecutive failures since the last success.
    pub failures: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32)
            | 1;
        Self {
            initial,
            max: max.max(initial),
            next: initial,
            failures: 0,
            seed,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub fn fail(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        // xorshift64: cheap, good enough for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let quarter = base.as_nanos() as u64 / 4;
        let jitter = if quarter == 0 {
            0
        } else {
            self.seed % (quarter + 1)
        };
        base.saturating_sub(Duration::from_nanos(jitter))
    }

    /// A success: the next failure starts over at `initial`.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_on_success() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1000));
        let bases = [100, 200, 400, 800, 1000, 1000];
        for base in bases {
            let delay = backoff.fail();
            assert!(
                delay <= ms(base) && delay >= ms(base) * 3 / 4,
                "{delay:?} for base {base} ms"
            );
        }
        assert_eq!(backoff.failures, 6);
        backoff.reset();
        assert_eq!(backoff.failures, 0);
        assert!(backoff.fail() <= ms(100));
    }

    #[test]
    fn a_max_below_initial_is_initial() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        backoff.fail();
        assert!(backoff.fail() <= Duration::from_secs(2));
    }
}
