//! Errors of the control plane (control socket, HTTP `PUT`-style edits, supervisor commands).

use crate::config::ConfigError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// A bad key or value: nothing was applied.
    #[error("{0}; running configuration kept")]
    Config(#[from] ConfigError),
    #[error("reload of {path} failed, running configuration kept: {source}")]
    Reload { path: String, source: ConfigError },
    #[error("{keys} cannot change while the agent runs; nothing was applied (restart the agent)")]
    Cold { keys: String },
    #[error("unknown probe `{name}`; known: {known}")]
    UnknownProbe { name: String, known: String },
    #[error("no actor named `{0}`")]
    UnknownPart(String),
    #[error("actor `{0}` is not running")]
    NotRunning(String),
    #[error("{name}: {reason}")]
    Start { name: String, reason: String },
    #[error("supervisor did not answer in time")]
    Timeout,
    #[error("supervisor unavailable: {0}")]
    Unavailable(String),
}
