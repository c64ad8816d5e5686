//! `huatuo-bamai config import`: upstream HUATUO's `huatuo-bamai.conf` (TOML with CamelCase keys,
//! `cmd/huatuo-bamai/config/config.go` and `core/*/config.go` upstream) turned into our
//! configuration. Every key of the file is mapped to ours or reported as not supported, with the
//! reason; keys the file does not set keep our defaults, except the probes: upstream runs every
//! tracer not in `BlackList`, so each probe of ours with an upstream counterpart is on unless
//! all its counterparts are blacklisted.

mod autotracing;
mod convert;
mod keys;
mod tracers;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::template::{self, Setting};
use super::{agent_wide_sections, Config, ConfigError, SectionSpec};

pub use convert::pcap_to_drop_filter;
pub use tracers::{tracer, upstream_names, Tracer};

/// Where upstream features we do not have yet are tracked.
const TRACKING: &str = "not implemented yet";

/// Top-level keys of upstream's file, v2 and the v1-era names: a file with these is upstream's.
const UPSTREAM_TOP_LEVEL: [&str; 13] = [
    "BlackList",
    "Log",
    "Runtime",
    "HTTPServer",
    "Tasks",
    "Storage",
    "Pod",
    "AutoTracing",
    "EventTracing",
    "MetricCollector",
    "LogLevel",
    "RuntimeCgroup",
    "Tracing",
];

/// Why an upstream file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid TOML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: `{key}`: {reason}", path.display())]
    BadValue {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{}: the imported configuration does not load: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
}

/// An upstream key without a counterpart here, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    pub key: String,
    pub why: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not supported: {}: {}", self.key, self.why)
    }
}

/// The result of an import: our keys to set, upstream keys we cannot honour, and notes about
/// keys that need nothing here (a default that is ours too, a blacklisted feature we lack).
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub settings: Vec<Setting>,
    pub unsupported: Vec<Unsupported>,
    pub notes: Vec<String>,
    /// The configuration the settings load to (checked by our loader).
    pub config: Config,
    /// The TOML file to write: our generated file with the settings and the report as comments.
    pub text: String,
}

/// Reads and imports an upstream configuration file.
pub fn import_file(path: &Path, specs: &[SectionSpec]) -> Result<Imported, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    import_str(path, &text, specs)
}

/// Imports upstream configuration text (`path` names it in messages and in the output).
pub fn import_str(path: &Path, text: &str, specs: &[SectionSpec]) -> Result<Imported, ImportError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((0, 0));
        ImportError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let root = toml::Value::Table(table);
    let mut leaves = Vec::new();
    flatten("", &root, &mut leaves);
    let mut importer = Importer::new(path, specs);
    for (key, value) in &leaves {
        importer.key(key, value)?;
    }
    importer.finish()
}

/// Top-level keys of an upstream file in `table` (empty when it is not one).
pub fn upstream_keys(table: &toml::Table) -> Vec<String> {
    table
        .keys()
        .filter(|k| UPSTREAM_TOP_LEVEL.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
    (line, column)
}

/// Every leaf of the tree as (dotted key, value); arrays of tables are leaves.
fn flatten<'a>(prefix: &str, value: &'a toml::Value, out: &mut Vec<(String, &'a toml::Value)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf)),
    }
}

#[derive(Default)]
struct Elasticsearch {
    address: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

struct Importer<'a> {
    path: &'a Path,
    specs: &'a [SectionSpec],
    settings: Vec<Setting>,
    unsupported: Vec<Unsupported>,
    notes: Vec<String>,
    blacklist: Vec<String>,
    elasticsearch: Elasticsearch,
}

impl<'a> Importer<'a> {
    fn new(path: &'a Path, specs: &'a [SectionSpec]) -> Self {
        Self {
            path,
            specs,
            settings: Vec::new(),
            unsupported: Vec::new(),
            notes: Vec::new(),
            blacklist: Vec::new(),
            elasticsearch: Elasticsearch::default(),
        }
    }

    fn bad(&self, key: &str, reason: impl Into<String>) -> ImportError {
        ImportError::BadValue {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn unsupported(&mut self, key: &str, why: impl Into<String>) {
        self.unsupported.push(Unsupported {
            key: key.to_string(),
            why: why.into(),
        });
    }

    fn note(&mut self, key: &str, what: impl std::fmt::Display) {
        self.notes.push(format!("{key}: {what}"));
    }

    /// Sets our `ours` (when its section exists in this build) from upstream `key`.
    fn set(&mut self, ours: &str, value: Value, key: &str, upstream: &toml::Value) {
        let section = ours.rsplit_once('.').map_or(ours, |(section, _)| section);
        let known = agent_wide_sections()
            .iter()
            .chain(self.specs.iter())
            .any(|s| s.path == section);
        if !known {
            self.unsupported(key, format!("`[{section}]` is not part of this build"));
            return;
        }
        // Long values (the vmstat regexes) are in the setting itself; the comment names the key.
        let shown = upstream.to_string();
        let comment = if shown.len() <= 48 {
            format!("Imported from upstream {key} = {shown}")
        } else {
            format!("Imported from upstream {key}")
        };
        match self.settings.iter_mut().find(|s| s.key == ours) {
            Some(existing) => {
                existing.value = value;
                existing.comment.push_str(&format!("; {comment}"));
            }
            None => self.settings.push(Setting {
                key: ours.to_string(),
                value,
                comment,
            }),
        }
    }

    fn string<'v>(&self, key: &str, value: &'v toml::Value) -> Result<&'v str, ImportError> {
        value
            .as_str()
            .ok_or_else(|| self.bad(key, format!("expected a string, got {value}")))
    }

    fn integer(&self, key: &str, value: &toml::Value, max: i64) -> Result<i64, ImportError> {
        match value.as_integer() {
            Some(n) if (0..=max).contains(&n) => Ok(n),
            Some(n) => Err(self.bad(key, format!("{n} is outside 0..={max}"))),
            None => Err(self.bad(key, format!("expected an integer, got {value}"))),
        }
    }

    fn boolean(&self, key: &str, value: &toml::Value) -> Result<bool, ImportError> {
        value
            .as_bool()
            .ok_or_else(|| self.bad(key, format!("expected true or false, got {value}")))
    }

    fn strings(&self, key: &str, value: &toml::Value) -> Result<Vec<String>, ImportError> {
        let items = value
            .as_array()
            .ok_or_else(|| self.bad(key, format!("expected a list of strings, got {value}")))?;
        items
            .iter()
            .map(|item| self.string(key, item).map(str::to_string))
            .collect()
    }

    fn finish_blacklist(&mut self) {
        let blacklist = std::mem::take(&mut self.blacklist);
        for name in &blacklist {
            match tracer(name) {
                Tracer::Probe(_) => {}
                Tracer::Missing => self.note(
                    "BlackList",
                    format_args!("`{name}` has no counterpart here; nothing to disable"),
                ),
                Tracer::Unknown => self.unsupported(
                    "BlackList",
                    format!("`{name}` is not an upstream tracer or collector name"),
                ),
            }
        }
        for (probe, upstream) in tracers::probes_with_counterparts() {
            let Some(spec) = self
                .specs
                .iter()
                .find(|s| s.path.strip_prefix("probes.") == Some(probe))
            else {
                continue;
            };
            let listed: Vec<&str> = upstream
                .iter()
                .copied()
                .filter(|u| blacklist.iter().any(|b| b == u))
                .collect();
            let enabled = listed.len() < upstream.len();
            if !listed.is_empty() && enabled {
                self.unsupported(
                    "BlackList",
                    format!(
                        "{}: here one probe, probes.{probe}, does the work of {}; blacklist all \
                         of them to turn it off",
                        listed.join(", "),
                        upstream.join(", ")
                    ),
                );
            }
            let default = (spec.defaults)()
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if enabled != default {
                let why = if enabled {
                    format!(
                        "not in upstream BlackList ({}): on, as upstream",
                        upstream.join(", ")
                    )
                } else {
                    format!("upstream BlackList names {}", listed.join(", "))
                };
                self.settings.push(Setting {
                    key: format!("probes.{probe}.enabled"),
                    value: json!(enabled),
                    comment: format!("Imported: {why}"),
                });
            }
        }
    }

    fn finish_elasticsearch(&mut self) -> Result<(), ImportError> {
        let es = std::mem::take(&mut self.elasticsearch);
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let set = [&es.address, &es.username, &es.password]
            .into_iter()
            .filter(|v| given(v))
            .count();
        if set == 0 {
            if es.address.is_some() || es.username.is_some() || es.password.is_some() {
                self.note(
                    "Storage.Elasticsearch",
                    "Address, Username, Password empty: no Elasticsearch, as here by default",
                );
            }
            return Ok(());
        }
        if set != 3 {
            return Err(self.bad(
                "Storage.Elasticsearch",
                "Address, Username and Password must be set together (upstream refuses this \
                 file too)",
            ));
        }
        let address = es.address.unwrap_or_default();
        let addresses: Vec<String> = address
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        let from = |s: &str| toml::Value::String(s.to_string());
        let key = "Storage.Elasticsearch.Address";
        self.set(
            "events.elasticsearch.enabled",
            json!(true),
            key,
            &from(&address),
        );
        self.set(
            "events.elasticsearch.addresses",
            json!(addresses),
            key,
            &from(&address),
        );
        let username = es.username.unwrap_or_default();
        self.set(
            "events.elasticsearch.username",
            json!(username),
            "Storage.Elasticsearch.Username",
            &from(&username),
        );
        self.set(
            "events.elasticsearch.password",
            json!(es.password.unwrap_or_default()),
            "Storage.Elasticsearch.Password",
            &from("********"),
        );
        Ok(())
    }

    fn finish(mut self) -> Result<Imported, ImportError> {
        self.finish_blacklist();
        self.finish_elasticsearch()?;
        let mut preamble = String::from("\n");
        template::comment(
            &mut preamble,
            &format!(
                "Imported from upstream {} by `huatuo-bamai config import`. Keys the upstream \
                 file does not set keep our defaults.",
                self.path.display()
            ),
        );
        for unsupported in &self.unsupported {
            template::comment(&mut preamble, &unsupported.to_string());
        }
        for note in &self.notes {
            template::comment(&mut preamble, &format!("note: {note}"));
        }
        let text = template::render_with(self.specs, &self.settings, &preamble);
        let config =
            Config::from_toml_str(&text, self.specs.to_vec().into()).map_err(|source| {
                ImportError::Output {
                    path: self.path.to_path_buf(),
                    source,
                }
            })?;
        // Every setting must have landed at its key (a key missing from the template would be
        // silently dropped).
        let tree = config.to_tree();
        for setting in &self.settings {
            let found = setting
                .key
                .split('.')
                .try_fold(&tree, |node, part| node.get(part));
            if found != Some(&setting.value) {
                return Err(ImportError::Output {
                    path: self.path.to_path_buf(),
                    source: ConfigError::BadValue {
                        key: setting.key.clone(),
                        reason: format!(
                            "set to {} but the generated file loads {}",
                            setting.value,
                            found.map_or("nothing".into(), Value::to_string)
                        ),
                    },
                });
            }
        }
        Ok(Imported {
            settings: self.settings,
            unsupported: self.unsupported,
            notes: self.notes,
            config,
            text,
        })
    }
}
