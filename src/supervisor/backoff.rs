//! Restart policy of one child: exponential backoff, and a cap on restarts within a window after
//! which the child is `failed` until an operator retries it. Pure, so it is tested on its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::SupervisorConfig;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Start again after this delay.
    RetryAfter(Duration),
    /// Too many restarts within the window: stop trying.
    GiveUp { restarts: usize },
}

#[derive(Debug, Clone)]
pub struct RestartBudget {
    recent: VecDeque<Instant>,
    next_backoff: Duration,
}

impl RestartBudget {
    pub fn new(config: &SupervisorConfig) -> Self {
        Self {
            recent: VecDeque::new(),
            next_backoff: config.backoff_initial(),
        }
    }

    /// Books a failure at `now` and says what to do.
    pub fn on_failure(&mut self, now: Instant, config: &SupervisorConfig) -> Verdict {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > config.restart_window())
        {
            self.recent.pop_front();
        }
        // No failure within the window: start over with the shortest delay.
        if self.recent.is_empty() {
            self.next_backoff = config.backoff_initial();
        }
        if self.recent.len() as u32 >= config.max_restarts {
            return Verdict::GiveUp {
                restarts: self.recent.len(),
            };
        }
        let delay = self.next_backoff;
        self.next_backoff = (delay * 2).min(config.backoff_max());
        self.recent.push_back(now);
        Verdict::RetryAfter(delay)
    }

    /// A fresh budget (an operator's retry, a reconfiguration).
    pub fn reset(&mut self, config: &SupervisorConfig) {
        self.recent.clear();
        self.next_backoff = config.backoff_initial();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SupervisorConfig {
        SupervisorConfig {
            restart_backoff_initial_ms: 100,
            restart_backoff_max_ms: 350,
            max_restarts: 3,
            restart_window_secs: 10,
        }
    }

    #[test]
    fn doubles_up_to_the_max_then_gives_up() {
        let c = config();
        let mut budget = RestartBudget::new(&c);
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(budget.on_failure(t, &c), Verdict::RetryAfter(ms(100)));
        assert_eq!(budget.on_failure(t, &c), Verdict::RetryAfter(ms(200)));
        assert_eq!(budget.on_failure(t, &c), Verdict::RetryAfter(ms(350)));
        assert_eq!(budget.on_failure(t, &c), Verdict::GiveUp { restarts: 3 });
    }

    #[test]
    fn a_quiet_window_starts_over() {
        let c = config();
        let mut budget = RestartBudget::new(&c);
        let t = Instant::now();
        budget.on_failure(t, &c);
        budget.on_failure(t, &c);
        let later = t + Duration::from_secs(11);
        assert_eq!(
            budget.on_failure(later, &c),
            Verdict::RetryAfter(Duration::from_millis(100))
        );
    }

    #[test]
    fn reset_gives_a_fresh_budget() {
        let c = config();
        let mut budget = RestartBudget::new(&c);
        let t = Instant::now();
        for _ in 0..3 {
            budget.on_failure(t, &c);
        }
        budget.reset(&c);
        assert_eq!(
            budget.on_failure(t, &c),
            Verdict::RetryAfter(Duration::from_millis(100))
        );
    }
}
