//! Logs a problem with one source (a file, a container, a device) once while it lasts, not every
//! tick.

use std::collections::HashSet;
use std::fmt::Display;

use crate::core::probe::ProbeError;

/// Distinct problems tracked per tick by default; further ones are not logged (bounds memory
/// and log volume under container churn or a file full of malformed lines).
pub const DEFAULT_CAPACITY: usize = 1024;

/// Report every problem during a tick ([`WarnOnce::warn`], [`WarnOnce::warn_error`], or
/// [`WarnOnce::first`] to log it yourself), then call [`WarnOnce::end_tick`]: a problem is logged
/// when it first appears, and again only if it went away for a tick and came back. Memory stays
/// bounded by the problems of the last tick, at most `capacity` of them.
#[derive(Debug)]
pub struct WarnOnce {
    /// Problems of the last completed tick (already logged).
    logged: HashSet<String>,
    /// Problems reported during the current tick.
    this_tick: HashSet<String>,
    capacity: usize,
}

impl Default for WarnOnce {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl WarnOnce {
    /// Tracks at most `capacity` distinct problems per tick.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            logged: HashSet::new(),
            this_tick: HashSet::new(),
            capacity,
        }
    }

    /// Records problem `key` for this tick; true when it should be logged now (it was not a
    /// problem during the last tick, nor already reported during this one).
    pub fn first(&mut self, key: &str) -> bool {
        if self.this_tick.contains(key) || self.this_tick.len() >= self.capacity {
            return false;
        }
        self.this_tick.insert(key.to_string());
        !self.logged.contains(key)
    }

    /// Logs `error` at warn level when problem `key` first appears.
    pub fn warn(&mut self, key: &str, error: &dyn Display) {
        if self.first(key) {
            tracing::warn!(error = %error, "source skipped (logged once while the problem lasts)");
        }
    }

    /// [`WarnOnce::warn`] keyed by what failed: reading or parsing the error's path. A malformed
    /// file also counts in `huatuo_bamai_collect_errors_total` every tick it is skipped (a
    /// missing one does not: containers come and go between listing and reading).
    pub fn warn_error(&mut self, error: &ProbeError) {
        if let ProbeError::Parse { probe, .. } = error {
            metrics::counter!("huatuo_bamai_collect_errors_total", "probe" => *probe).increment(1);
        }
        let key = match error {
            ProbeError::Read { path, .. } => format!("read\0{path}"),
            ProbeError::Parse { path, .. } => format!("parse\0{path}"),
            other => other.to_string(),
        };
        self.warn(&key, error);
    }

    /// Forgets problems that did not occur during this tick.
    pub fn end_tick(&mut self) {
        self.logged = std::mem::take(&mut self.this_tick);
    }

    /// Ends the tick of a probe that reads the host and its containers: the tick fails with the
    /// host's error only when no container was collected either; otherwise that problem is
    /// logged once (as problem `host`), counted in `huatuo_bamai_collect_errors_total` like a
    /// failed tick (a garbled host file must not hide behind healthy containers), and the
    /// container series are kept.
    pub fn end_tick_with_host(
        &mut self,
        host: Result<(), ProbeError>,
        containers_collected: usize,
    ) -> Result<(), ProbeError> {
        let result = match host {
            Err(e) if containers_collected > 0 => {
                if let Some(probe) = e.probe() {
                    metrics::counter!("huatuo_bamai_collect_errors_total", "probe" => probe)
                        .increment(1);
                }
                self.warn("host", &e);
                Ok(())
            }
            other => other,
        };
        self.end_tick();
        result
    }

    /// Problems seen during the last completed tick.
    pub fn active(&self) -> usize {
        self.logged.len()
    }

    /// No problem during the last completed tick.
    pub fn is_empty(&self) -> bool {
        self.logged.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_while_the_problem_lasts_and_again_after_it_cleared() {
        let mut warned = WarnOnce::default();
        assert!(warned.first("a"));
        assert!(!warned.first("a"), "once per tick");
        warned.end_tick();
        assert_eq!(warned.active(), 1);
        assert!(!warned.first("a"), "still the same problem");
        warned.end_tick();
        // A tick without the problem clears it.
        warned.end_tick();
        assert!(warned.is_empty());
        assert!(warned.first("a"));
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let mut warned = WarnOnce::with_capacity(2);
        assert!(warned.first("a"));
        assert!(warned.first("b"));
        assert!(!warned.first("c"), "over capacity: not logged");
        warned.end_tick();
        assert_eq!(warned.active(), 2);
        for i in 0..10_000 {
            warned.first(&i.to_string());
        }
        warned.end_tick();
        assert_eq!(warned.active(), 2);
    }

    #[test]
    fn host_error_fails_the_tick_only_without_containers() {
        let host = || {
            Err(ProbeError::Unsupported {
                probe: "demo",
                reason: "gone".into(),
            })
        };
        let mut warned = WarnOnce::default();
        assert!(warned.end_tick_with_host(host(), 0).is_err());
        assert!(warned.is_empty());
        assert!(warned.end_tick_with_host(host(), 2).is_ok());
        assert_eq!(warned.active(), 1);
        assert!(warned.end_tick_with_host(Ok(()), 0).is_ok());
        assert!(warned.is_empty());
    }

    #[test]
    fn errors_are_keyed_by_what_failed_on_which_path() {
        let read = |path: &str| ProbeError::Read {
            probe: "demo",
            path: path.into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        let parse = |path: &str| ProbeError::Parse {
            probe: "demo",
            path: path.into(),
            reason: "bad".into(),
        };
        let mut warned = WarnOnce::default();
        warned.warn_error(&read("/a"));
        warned.warn_error(&read("/a"));
        warned.warn_error(&parse("/a"));
        warned.warn_error(&read("/b"));
        warned.end_tick();
        assert_eq!(warned.active(), 3);
    }
}
