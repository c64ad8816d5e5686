//! How often a hung task or soft lockup report gets a document: upstream's doubling backoff
//! with decay.

use std::time::{Duration, Instant};

/// Upstream's backoff of saved documents (cloudflare/backoff without jitter, with decay): a
/// report is saved when the previous period has run out; each save makes the next period twice
/// the last, up to `max`; a save more than the last period plus `decay` after the previous one
/// starts over at `initial`.
#[derive(Debug)]
pub struct SaveBackoff {
    initial: Duration,
    max: Duration,
    decay: Duration,
    /// Saves since the last start-over.
    saves: u32,
    last_save: Option<Instant>,
    next_allowed: Option<Instant>,
}

impl SaveBackoff {
    pub fn new(initial: Duration, max: Duration, decay: Duration) -> Self {
        Self {
            initial,
            max,
            decay,
            saves: 0,
            last_save: None,
            next_allowed: None,
        }
    }

    /// The period after the `n`th save (0-based) since the last start-over.
    fn period(&self, n: u32) -> Duration {
        let doubled = 2u32
            .checked_pow(n)
            .and_then(|factor| self.initial.checked_mul(factor))
            .unwrap_or(Duration::MAX);
        doubled.min(self.max)
    }

    /// True when a report at `now` gets a document (and starts the next period).
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.next_allowed.is_some_and(|next| now < next) {
            return false;
        }
        if let Some(last) = self.last_save {
            let last_period = self.period(self.saves.saturating_sub(1));
            let quiet = now.saturating_duration_since(last);
            if !self.decay.is_zero() && quiet > last_period.saturating_add(self.decay) {
                self.saves = 0;
            }
        }
        let period = self.period(self.saves);
        self.saves = self.saves.saturating_add(1);
        self.last_save = Some(now);
        self.next_allowed = now.checked_add(period);
        true
    }
}
