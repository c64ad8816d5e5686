//! Logs a problem with one source (a container's file) once while it lasts, not every tick.

use std::collections::HashSet;

use crate::probes::ProbeError;

/// Call [`WarnOnce::warn`] for every skipped source during a tick, then [`WarnOnce::end_tick`]:
/// a problem is logged when it first appears, and again only if it went away and came back.
/// Memory stays bounded by the problems of the last tick.
#[derive(Debug, Default)]
pub struct WarnOnce {
    logged: HashSet<String>,
    this_tick: HashSet<String>,
}

impl WarnOnce {
    pub fn warn(&mut self, error: &ProbeError) {
        let key = match error {
            ProbeError::Read { path, .. } => format!("read\0{path}"),
            ProbeError::Parse { path, .. } => format!("parse\0{path}"),
            other => other.to_string(),
        };
        if !self.logged.contains(&key) {
            tracing::warn!(error = %error, "source skipped (logged once while the problem lasts)");
        }
        self.this_tick.insert(key);
    }

    /// Forgets problems that did not occur during this tick.
    pub fn end_tick(&mut self) {
        self.logged = std::mem::take(&mut self.this_tick);
    }

    /// Problems seen during the last completed tick (tests).
    pub fn active(&self) -> usize {
        self.logged.len()
    }
}
