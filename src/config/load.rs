//! Where the configuration comes from: defaults, the TOML file, `HUATUO_*` variables and flags,
//! merged by figment; and the check that every section in them is one the agent knows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use super::{agent_wide_sections, Config, ConfigError, SectionSpec};

/// Default location of the configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/huatuo/huatuo-bamai.toml";
/// Prefix of environment overrides; nested keys are joined by `__`
/// (`HUATUO_PROBES__SOFTIRQ__ENABLED=false`).
pub const ENV_PREFIX: &str = "HUATUO_";

/// Overrides from command-line flags, the last layer.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub region: Option<String>,
    pub listen: Option<String>,
    pub control_socket: Option<PathBuf>,
    pub log_level: Option<String>,
    pub procfs_root: Option<PathBuf>,
    pub sysfs_root: Option<PathBuf>,
    /// Probes to turn off (`--disable a,b`).
    pub disable: Vec<String>,
    /// Other keys set by flags, dotted key → value (upstream's flags that map to our keys,
    /// e.g. `--disable-kubelet`).
    pub settings: Vec<(String, serde_json::Value)>,
}

/// Where the configuration came from, kept so `reload` can rebuild it the same way.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// True when the path was given explicitly (then a missing file is an error).
    pub explicit: bool,
    pub flags: FlagOverrides,
    /// The part sections to load (from the registry).
    pub sections: Arc<[SectionSpec]>,
}

/// Resolves the config path from the flag (explicit) or the default location.
pub fn source_from(
    path: Option<&Path>,
    flags: FlagOverrides,
    sections: Arc<[SectionSpec]>,
) -> ConfigSource {
    ConfigSource {
        path: path.map_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH), Path::to_path_buf),
        explicit: path.is_some(),
        flags,
        sections,
    }
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(default_tree(&self.sections)));
        if self.path.exists() {
            reject_upstream_file(&self.path)?;
            figment = figment.merge(Toml::file_exact(&self.path));
        } else if self.explicit {
            return Err(ConfigError::FileMissing {
                path: self.path.clone(),
            });
        }
        figment = figment.merge(env_provider(&self.sections));
        figment = figment.merge(Serialized::defaults(self.flags_dict()?));
        Config::from_figment(&figment, self.sections.clone())
    }

    fn flags_dict(&self) -> Result<Dict, ConfigError> {
        let flags = &self.flags;
        let mut pairs: Vec<(String, Value)> = Vec::new();
        let path = |p: &Path| Value::from(p.display().to_string());
        if let Some(region) = &flags.region {
            pairs.push(("agent.region".into(), Value::from(region.clone())));
        }
        if let Some(level) = &flags.log_level {
            pairs.push(("agent.log_level".into(), Value::from(level.clone())));
        }
        if let Some(listen) = &flags.listen {
            pairs.push(("http.listen".into(), Value::from(listen.clone())));
        }
        if let Some(root) = &flags.procfs_root {
            pairs.push(("agent.procfs_root".into(), path(root)));
        }
        if let Some(root) = &flags.sysfs_root {
            pairs.push(("agent.sysfs_root".into(), path(root)));
        }
        if let Some(socket) = &flags.control_socket {
            pairs.push(("control.socket".into(), path(socket)));
        }
        let probes: Vec<&str> = self
            .sections
            .iter()
            .filter_map(|s| s.path.strip_prefix("probes."))
            .collect();
        for name in &flags.disable {
            if !probes.contains(&name.as_str()) {
                return Err(ConfigError::BadValue {
                    key: "--disable".into(),
                    reason: format!("unknown probe `{name}`; known: {}", probes.join(", ")),
                });
            }
            pairs.push((format!("probes.{name}.enabled"), Value::from(false)));
        }
        for (key, value) in &flags.settings {
            let value = Value::serialize(value).map_err(|e| ConfigError::BadValue {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            pairs.push((key.clone(), value));
        }
        let mut dict = Dict::new();
        for (key, value) in pairs {
            insert_dotted(&mut dict, &key, value);
        }
        Ok(dict)
    }
}

impl Config {
    /// Loads configuration text (defaults below it; no environment, no flags).
    pub fn from_toml_str(text: &str, specs: Arc<[SectionSpec]>) -> Result<Config, ConfigError> {
        let figment =
            Figment::from(Serialized::defaults(default_tree(&specs))).merge(Toml::string(text));
        Config::from_figment(&figment, specs)
    }
}

/// An upstream `huatuo-bamai.conf` given as ours gets one clear error, not one per unknown
/// section. A file that is not TOML is left to the loader's own error.
fn reject_upstream_file(path: &Path) -> Result<(), ConfigError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let keys = super::upstream::upstream_keys(&table);
    if keys.is_empty() {
        return Ok(());
    }
    Err(ConfigError::UpstreamFile {
        path: path.to_path_buf(),
        keys: keys.join(", "),
    })
}

/// First segments of every known section path: `agent`, …, `probes`, `sampler`.
pub(crate) fn top_level_names(specs: &[SectionSpec]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = agent_wide_sections()
        .iter()
        .chain(specs.iter())
        .map(|s| s.path.split('.').next().unwrap_or(s.path))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn env_provider(specs: &[SectionSpec]) -> Env {
    // Only nested keys of known sections: HUATUO_REQUIRE_BPF and friends are not config.
    let prefixes: Vec<String> = top_level_names(specs)
        .iter()
        .map(|name| format!("{name}__"))
        .collect();
    Env::prefixed(ENV_PREFIX)
        .filter(move |key| {
            let key = key.as_str().to_ascii_lowercase();
            prefixes.iter().any(|prefix| key.starts_with(prefix))
        })
        .split("__")
}

/// Every section's defaults in one tree (the lowest layer).
pub(crate) fn default_tree(specs: &[SectionSpec]) -> serde_json::Value {
    let mut tree = serde_json::Map::new();
    for spec in agent_wide_sections().iter().chain(specs.iter()) {
        insert_json(&mut tree, spec.path, (spec.defaults)());
    }
    serde_json::Value::Object(tree)
}

/// Puts `value` at a dotted path, merging into the objects already there (`events` then
/// `events.elasticsearch`, in either order).
pub(crate) fn insert_json(
    tree: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
    value: serde_json::Value,
) {
    let mut parts = path.split('.').peekable();
    let mut current = tree;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            match (current.get_mut(part), value) {
                (Some(serde_json::Value::Object(existing)), serde_json::Value::Object(new)) => {
                    for (k, v) in new {
                        existing.entry(k).or_insert(v);
                    }
                }
                (_, value) => {
                    current.insert(part.to_string(), value);
                }
            }
            return;
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(Default::default());
        }
        let serde_json::Value::Object(next) = entry else {
            return;
        };
        current = next;
    }
}

pub(crate) fn insert_dotted(dict: &mut Dict, dotted: &str, value: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut current = dict;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return;
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::from(Dict::new()));
        if !matches!(entry, Value::Dict(..)) {
            *entry = Value::from(Dict::new());
        }
        let Value::Dict(_, next) = entry else { return };
        current = next;
    }
}

/// Every table in the sources is a known section or leads to one (`probes` → `probes.x`);
/// anything else is a typo the agent must not silently ignore.
pub(crate) fn check_unknown_sections(
    figment: &Figment,
    specs: &[SectionSpec],
) -> Result<(), ConfigError> {
    let tree: Dict = figment.extract()?;
    let known: Vec<&'static str> = agent_wide_sections()
        .iter()
        .chain(specs.iter())
        .map(|s| s.path)
        .collect();
    check_level(figment, &tree, "", &known)
}

fn check_level(
    figment: &Figment,
    dict: &Dict,
    prefix: &str,
    known: &[&'static str],
) -> Result<(), ConfigError> {
    for (key, value) in dict {
        let path = format!("{prefix}{key}");
        if known.contains(&path.as_str()) {
            continue;
        }
        let below = format!("{path}.");
        let children: Vec<&str> = known
            .iter()
            .filter_map(|k| k.strip_prefix(below.as_str()))
            .collect();
        match value {
            Value::Dict(_, inner) if !children.is_empty() => {
                check_level(figment, inner, &below, known)?;
            }
            _ => {
                let siblings: Vec<&str> = known
                    .iter()
                    .filter_map(|k| k.strip_prefix(prefix))
                    .map(|k| k.split('.').next().unwrap_or(k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let origin = match figment.find_metadata(&path) {
                    Some(md) => match &md.source {
                        Some(figment::Source::File(file)) => format!("file {}", file.display()),
                        _ => md.name.to_string(),
                    },
                    None => "the configuration".to_string(),
                };
                let what = if prefix == "probes." {
                    format!("unknown probe `{key}`")
                } else {
                    format!("unknown section `{path}`")
                };
                return Err(ConfigError::Invalid(format!(
                    "`{path}`: {what} (in {origin}); known: {}",
                    siblings.join(", ")
                )));
            }
        }
    }
    Ok(())
}
