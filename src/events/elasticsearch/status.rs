//! What the sink is doing, for `huatuo-bamai ctl status` (the DETAIL of the `elasticsearch`
//! row): connected or not, what waits in the spool, the last error. The sink hands each change
//! to a [`StatusReport`] its owner gives it (the service puts it on the agent's status board).

use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SinkStatus {
    pub enabled: bool,
    /// The last request reached the cluster and was answered.
    pub connected: bool,
    /// True before the first request of this run.
    pub idle: bool,
    pub address: String,
    pub spooled_documents: u64,
    pub spooled_bytes: u64,
    pub sent: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub last_error: Option<String>,
}

/// Called with the sink's status after every change.
pub type StatusReport = Arc<dyn Fn(&SinkStatus) + Send + Sync>;

impl SinkStatus {
    /// One line: "connected to http://…: 120 sent", "spooling 42 documents (8 KiB): …".
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "disabled (events.elasticsearch.enabled = false)".to_string();
        }
        let spool = format!(
            "{} documents ({} KiB)",
            self.spooled_documents,
            self.spooled_bytes.div_ceil(1024)
        );
        let mut text = if self.idle {
            if self.spooled_documents > 0 {
                format!("{} with {spool} spooled", self.address)
            } else {
                format!("{}, nothing sent yet", self.address)
            }
        } else if !self.connected {
            format!("spooling {spool}: {} unavailable", self.address)
        } else if self.spooled_documents > 0 {
            format!("connected to {}, replaying {spool}", self.address)
        } else {
            format!("connected to {}", self.address)
        };
        text.push_str(&format!("; {} sent", self.sent));
        if self.dead_lettered > 0 {
            text.push_str(&format!(", {} dead-lettered", self.dead_lettered));
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
    fn the_summary_says_where_documents_are() {
        let mut status = SinkStatus {
            enabled: true,
            connected: true,
            address: "http://es:9200".into(),
            sent: 5,
            ..Default::default()
        };
        assert_eq!(status.summary(), "connected to http://es:9200; 5 sent");
        status.connected = false;
        status.spooled_documents = 3;
        status.spooled_bytes = 2000;
        status.last_error = Some("connection refused".into());
        assert_eq!(
            status.summary(),
            "spooling 3 documents (2 KiB): http://es:9200 unavailable; 5 sent; last error: connection refused"
        );
        status.enabled = false;
        assert!(status.summary().starts_with("disabled"));
    }
}
