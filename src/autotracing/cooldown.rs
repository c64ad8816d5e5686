//! Cooldown between captures: one global gate per trigger plus one gate per container, so a noisy
//! container cannot starve the others and the host is not captured over and over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Remembers when each scope last captured. Time is passed in, so tests need no clock.
#[derive(Debug, Clone)]
pub struct Cooldown {
    global: Duration,
    per_container: Duration,
    last_global: Option<Instant>,
    last_container: HashMap<String, Instant>,
}

impl Cooldown {
    pub fn new(global: Duration, per_container: Duration) -> Self {
        Self {
            global,
            per_container,
            last_global: None,
            last_container: HashMap::new(),
        }
    }

    /// Changes the periods live (`ctl set`); the remembered capture times stay.
    pub fn set_periods(&mut self, global: Duration, per_container: Duration) {
        self.global = global;
        self.per_container = per_container;
    }

    /// Whether a capture for `container` (None = host) may start at `now`.
    pub fn ready(&self, container: Option<&str>, now: Instant) -> bool {
        let passed = |last: Option<&Instant>, period: Duration| {
            last.is_none_or(|t| now.saturating_duration_since(*t) >= period)
        };
        let host_ok = passed(self.last_global.as_ref(), self.global);
        match container {
            None => host_ok,
            Some(id) => host_ok && passed(self.last_container.get(id), self.per_container),
        }
    }

    /// Records a capture started at `now` (call it also when the capture could not run, so a
    /// failing capture is not retried every interval).
    pub fn mark(&mut self, container: Option<&str>, now: Instant) {
        self.last_global = Some(now);
        if let Some(id) = container {
            self.last_container.insert(id.to_string(), now);
        }
    }

    /// Forgets containers that are gone, so the map does not grow with container churn.
    pub fn retain_containers(&mut self, alive: impl Fn(&str) -> bool) {
        self.last_container.retain(|id, _| alive(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_gate_blocks_until_period_passes() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(10), Duration::from_secs(30));
        assert!(c.ready(None, t0));
        c.mark(None, t0);
        assert!(!c.ready(None, t0 + Duration::from_secs(9)));
        assert!(c.ready(None, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn container_gate_is_per_container() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::ZERO, Duration::from_secs(30));
        c.mark(Some("a"), t0);
        let later = t0 + Duration::from_secs(5);
        assert!(!c.ready(Some("a"), later));
        assert!(c.ready(Some("b"), later));
        assert!(c.ready(Some("a"), t0 + Duration::from_secs(30)));
        c.retain_containers(|id| id != "a");
        assert!(c.ready(Some("a"), later));
    }

    #[test]
    fn global_gate_also_blocks_containers() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(60), Duration::from_secs(1));
        c.mark(Some("a"), t0);
        assert!(!c.ready(Some("b"), t0 + Duration::from_secs(2)));
    }
}
