//! `[events]`: the embedded event store (the `event_store` part).

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::config::{Invalid, Live, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// The embedded event store: every kernel event document, kept in a crash-safe redb database
/// (GET /v1/events, `huatuo-bamai events list`). Its directory is created when missing.
pub struct EventsConfig {
    /// The redb database file.
    pub store_path: PathBuf,
    /// Documents older than this are deleted (checked every minute).
    pub retention_days: u64,
    /// Cap on the stored documents in MiB; past it the oldest are deleted first. The file itself
    /// takes somewhat more (B-tree pages; pages freed by deletions are reused, not returned).
    pub max_store_mib: u64,
    /// `[events.elasticsearch]` is the Elasticsearch sink's own section.
    #[serde(skip_serializing)]
    pub elasticsearch: serde::de::IgnoredAny,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            store_path: PathBuf::from("/var/lib/huatuo/events.redb"),
            retention_days: 7,
            max_store_mib: 512,
            elasticsearch: serde::de::IgnoredAny,
        }
    }
}

impl Section for EventsConfig {
    const PATH: &'static str = "events";
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        if self.store_path.as_os_str().is_empty() {
            return Err(Invalid::field("store_path", "must not be empty"));
        }
        if self.retention_days == 0 {
            return Err(Invalid::field("retention_days", "must be at least 1"));
        }
        if self.max_store_mib == 0 {
            return Err(Invalid::field("max_store_mib", "must be at least 1"));
        }
        Ok(())
    }
}
