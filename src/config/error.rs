//! Configuration errors: each names the key and where its value came from.

use std::path::PathBuf;

use super::ENV_PREFIX;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    FileMissing { path: PathBuf },
    #[error(
        "{} is upstream HUATUO's configuration format (keys {keys}); convert it with \
         `huatuo-bamai config import {} > huatuo-bamai.toml` and pass that file",
        path.display(),
        path.display()
    )]
    UpstreamFile { path: PathBuf, keys: String },
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
/// `section` is the dotted path of the focused section the error's own path is relative to.
pub(crate) fn describe_error(error: &figment::Error, section: Option<&str>) -> String {
    let path: Vec<String> = section
        .into_iter()
        .flat_map(|s| s.split('.'))
        .map(str::to_string)
        .chain(error.path.iter().cloned())
        .collect();
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
