//! Configuration errors: each names the key and where its value came from.

use std::path::PathBuf;

use super::ENV_PREFIX;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    FileMissing { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid value for `{key}`: {reason}")]
    BadValue { key: String, reason: String },
    #[error("`{key}` cannot be changed while the agent runs; edit the file and restart the agent")]
    Cold { key: String },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        let messages: Vec<String> = err.into_iter().map(|e| describe_error(&e, None)).collect();
        ConfigError::Invalid(messages.join("; "))
    }
}

/// "`probes.softirq`: unknown field `x`, expected … (in file /etc/huatuo/huatuo-bamai.toml)".
/// `section` is the dotted path an `extract_inner` started from, put in front of the error's
/// own path when figment left it out.
pub(crate) fn describe_error(error: &figment::Error, section: Option<&str>) -> String {
    // figment reports the path below the focused section, and has been seen to append the
    // section's own segments too: strip them wherever they stand, then put them in front.
    let section: Vec<String> = section
        .map(|s| s.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    let mut below = error.path.clone();
    if !section.is_empty() {
        if below.starts_with(&section) {
            below.drain(..section.len());
        } else if below.ends_with(&section) {
            below.truncate(below.len() - section.len());
        }
    }
    let path: Vec<String> = section.into_iter().chain(below).collect();
    let key = if path.is_empty() {
        "(top level)".to_string()
    } else {
        path.join(".")
    };
    let origin = match &error.metadata {
        Some(md) if md.name.contains("environment") => {
            format!(
                "environment variable {ENV_PREFIX}{}",
                path.join("__").to_uppercase()
            )
        }
        Some(md) => match &md.source {
            Some(figment::Source::File(file)) => format!("file {}", file.display()),
            // Defaults and live edits come from serialized values, named by their Rust type.
            _ => "the defaults or a live edit".to_string(),
        },
        None => "defaults".to_string(),
    };
    format!("`{key}`: {} (in {origin})", error.kind)
}
