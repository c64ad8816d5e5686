//! What the pusher is doing, for `huatuo-bamai ctl status` (the DETAIL of the `pyroscope` row).

use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PyroscopeStatus {
    pub enabled: bool,
    /// The last push reached the server and was answered.
    pub connected: bool,
    /// True before the first push of this run.
    pub idle: bool,
    pub address: String,
    pub queued_windows: usize,
    /// Pushes delivered.
    pub pushed: u64,
    /// Pushes that failed and were (or will be) retried.
    pub failed: u64,
    /// Pushes the server refused (4xx), not retried.
    pub rejected: u64,
    /// Windows lost: queue full, or the bus outran the pusher; plus refused pushes.
    pub dropped: u64,
    pub last_error: Option<String>,
}

/// Called with the pusher's status after every change.
pub type StatusReport = Arc<dyn Fn(&PyroscopeStatus) + Send + Sync>;

impl PyroscopeStatus {
    /// One line: "pushing to http://…: 12 pushed", "queueing 3 windows: http://… unavailable".
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "disabled (profiling.pyroscope.enabled = false)".to_string();
        }
        let mut text = if self.idle {
            format!("{}, nothing pushed yet", self.address)
        } else if !self.connected {
            format!(
                "queueing {} windows: {} unavailable",
                self.queued_windows, self.address
            )
        } else {
            format!("pushing to {}", self.address)
        };
        if self.idle && self.queued_windows > 0 {
            text.push_str(&format!(", {} windows queued", self.queued_windows));
        }
        text.push_str(&format!("; {} pushed", self.pushed));
        if self.rejected > 0 {
            text.push_str(&format!(", {} rejected", self.rejected));
        }
        if self.dropped > 0 {
            text.push_str(&format!(", {} dropped", self.dropped));
        }
        if let Some(error) = &self.last_error {
            text.push_str(&format!("; last error: {error}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_where_windows_are() {
        let mut status = PyroscopeStatus {
            enabled: true,
            connected: true,
            address: "http://p:4040".into(),
            pushed: 4,
            ..Default::default()
        };
        assert_eq!(status.summary(), "pushing to http://p:4040; 4 pushed");
        status.connected = false;
        status.queued_windows = 2;
        status.dropped = 1;
        status.last_error = Some("connection refused".into());
        assert_eq!(
            status.summary(),
            "queueing 2 windows: http://p:4040 unavailable; 4 pushed, 1 dropped; last error: connection refused"
        );
        status.enabled = false;
        assert!(status.summary().starts_with("disabled"));
    }
}
