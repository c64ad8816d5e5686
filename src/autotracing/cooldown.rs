//! Cooldown between captures, as upstream's `IntervalTracing` (1800 s by default): after a capture
//! a trigger stays quiet globally for `global` and per key (a container id, a disk; `()` for a
//! host trigger) for `per_key`, so a noisy container cannot starve the others and the host is not
//! captured over and over. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Cooldown<K> {
    global: Duration,
    per_key: Duration,
    last_any: Option<Instant>,
    last: HashMap<K, Instant>,
}

impl<K: Eq + Hash + Clone> Cooldown<K> {
    pub fn new(global: Duration, per_key: Duration) -> Self {
        Self {
            global,
            per_key,
            last_any: None,
            last: HashMap::new(),
        }
    }

    /// Whether a capture for `key` may start at `now`.
    pub fn ready(&self, key: &K, now: Instant) -> bool {
        let quiet = |since: Option<&Instant>, span: Duration| {
            since.is_none_or(|t| now.saturating_duration_since(*t) >= span)
        };
        quiet(self.last_any.as_ref(), self.global) && quiet(self.last.get(key), self.per_key)
    }

    /// Records a capture for `key` at `now` (also when the capture could not run, so a failing
    /// capture is not retried every interval).
    pub fn fired(&mut self, key: K, now: Instant) {
        self.last_any = Some(now);
        self.last.insert(key, now);
        // Keys whose cooldown is over carry no information: keep the map small.
        let span = self.per_key;
        self.last
            .retain(|_, t| now.saturating_duration_since(*t) < span);
    }

    /// New spans (live `ctl set`); past captures keep counting.
    pub fn set_spans(&mut self, global: Duration, per_key: Duration) {
        self.global = global;
        self.per_key = per_key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_then_waits_per_key_and_globally() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(10), Duration::from_secs(100));
        assert!(c.ready(&"a", t0));
        c.fired("a", t0);
        assert!(!c.ready(&"a", t0 + Duration::from_secs(50)));
        assert!(!c.ready(&"b", t0 + Duration::from_secs(5)), "global span");
        assert!(c.ready(&"b", t0 + Duration::from_secs(11)));
        assert!(c.ready(&"a", t0 + Duration::from_secs(100)));
    }

    #[test]
    fn zero_spans_never_hold_back() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::ZERO, Duration::ZERO);
        c.fired(1u64, t0);
        assert!(c.ready(&1, t0));
    }

    #[test]
    fn host_trigger_uses_the_unit_key() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::from_secs(30), Duration::ZERO);
        c.fired((), t0);
        assert!(!c.ready(&(), t0 + Duration::from_secs(29)));
        assert!(c.ready(&(), t0 + Duration::from_secs(30)));
    }

    #[test]
    fn new_spans_apply_to_past_captures() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(Duration::ZERO, Duration::from_secs(1800));
        c.fired("a", t0);
        assert!(!c.ready(&"a", t0 + Duration::from_secs(10)));
        c.set_spans(Duration::ZERO, Duration::from_secs(10));
        assert!(c.ready(&"a", t0 + Duration::from_secs(10)));
    }
}
