//! A configuration section owned by the part that uses it: its typed struct (defaults, doc
//! comments, validation) lives next to its code and declares where it sits in the file.
//! [`SectionSpec`] is the type-erased form the loader, `ctl set` and the template generator use.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use documented::{Documented, DocumentedFieldsOpt};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{describe_error, ConfigError};

/// How a changed section takes effect while the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// The owning part is restarted alone with the new section.
    RestartPart,
    /// The owning part re-reads the section itself (no restart).
    ReadLive,
    /// Only an agent restart applies it; `ctl set` refuses its keys.
    RestartAgent,
}

/// A section's check beyond types: which field (if one) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub field: Option<&'static str>,
    pub reason: String,
}

impl Invalid {
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl From<String> for Invalid {
    fn from(reason: String) -> Self {
        Self {
            field: None,
            reason,
        }
    }
}

impl From<&str> for Invalid {
    fn from(reason: &str) -> Self {
        Self::from(reason.to_string())
    }
}

/// A typed configuration section. Doc comments on the struct and its fields become the comments
/// of the generated config file (`huatuo-bamai config default`), so write them for operators.
pub trait Section:
    Serialize
    + DeserializeOwned
    + Default
    + Clone
    + PartialEq
    + fmt::Debug
    + Documented
    + DocumentedFieldsOpt
    + Send
    + Sync
    + 'static
{
    /// Dotted path of the section in the file: `probes.softirq`, `sampler`, `events`.
    const PATH: &'static str;
    const LIVE: Live = Live::RestartPart;

    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// One field of a section for the template: name and doc comment.
#[derive(Debug, Clone)]
pub struct FieldDoc {
    pub name: &'static str,
    pub doc: Option<&'static str>,
}

/// A section, type-erased: how to load it from the layered sources and how to document it.
#[derive(Clone)]
pub struct SectionSpec {
    pub path: &'static str,
    pub live: Live,
    pub doc: &'static str,
    pub fields: fn() -> Vec<FieldDoc>,
    pub defaults: fn() -> serde_json::Value,
    load: fn(&Figment) -> Result<LoadedSection, ConfigError>,
}

impl fmt::Debug for SectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionSpec")
            .field("path", &self.path)
            .field("live", &self.live)
            .finish()
    }
}

impl SectionSpec {
    pub fn of<S: Section>() -> Self {
        Self {
            path: S::PATH,
            live: S::LIVE,
            doc: S::DOCS,
            fields: || {
                S::FIELD_NAMES
                    .iter()
                    .zip(S::FIELD_DOCS.iter())
                    .map(|(name, doc)| FieldDoc { name, doc: *doc })
                    .collect()
            },
            defaults: || serde_json::to_value(S::default()).unwrap_or_default(),
            load: load_section::<S>,
        }
    }

    pub(crate) fn load(&self, figment: &Figment) -> Result<LoadedSection, ConfigError> {
        (self.load)(figment)
    }
}

/// A loaded, validated section: the typed value for its part, its JSON for diffs and output.
#[derive(Clone)]
pub(crate) struct LoadedSection {
    pub typed: Arc<dyn Any + Send + Sync>,
    pub json: serde_json::Value,
}

impl fmt::Debug for LoadedSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.json.fmt(f)
    }
}

impl LoadedSection {
    pub fn new<S: Section>(section: S) -> Self {
        Self {
            json: serde_json::to_value(&section).unwrap_or_default(),
            typed: Arc::new(section),
        }
    }
}

fn load_section<S: Section>(figment: &Figment) -> Result<LoadedSection, ConfigError> {
    // Focused on the section, errors carry paths below it (and keep their metadata).
    let section: S = figment.focus(S::PATH).extract().map_err(|e| {
        let messages: Vec<String> = e
            .into_iter()
            .map(|e| describe_error(&e, Some(S::PATH)))
            .collect();
        ConfigError::Invalid(messages.join("; "))
    })?;
    check::<S>(&section)?;
    Ok(LoadedSection::new(section))
}

/// Runs a section's validation, naming `<path>.<field>` in the error.
pub(crate) fn check<S: Section>(section: &S) -> Result<(), ConfigError> {
    section.validate().map_err(|invalid| ConfigError::BadValue {
        key: match invalid.field {
            Some(field) => format!("{}.{field}", S::PATH),
            None => S::PATH.to_string(),
        },
        reason: invalid.reason,
    })
}
