//! Agent configuration: agent-wide sections here, every other section owned by its part (a
//! [`Section`] next to the part's code, registered through its [`SectionSpec`]). Layered defaults
//! → TOML file → `HUATUO_*` environment → command-line flags, strict validation (unknown keys and
//! wrong types name the key and the file), and the live `set KEY VALUE` edit of the control
//! socket.

mod agent_wide;
mod edit;
mod error;
mod load;
mod section;
pub mod template;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;

use figment::Figment;
use serde::Serialize;

pub use agent_wide::{
    parse_log_filter, AgentConfig, ControlConfig, HttpConfig, MetricsConfig, SupervisorConfig,
};
pub use error::ConfigError;
pub use load::{source_from, ConfigSource, FlagOverrides, DEFAULT_CONFIG_PATH, ENV_PREFIX};
pub use section::{FieldDoc, Invalid, Live, Section, SectionSpec};

use section::LoadedSection;

/// The agent-wide sections, in file order.
pub fn agent_wide_sections() -> Vec<SectionSpec> {
    vec![
        SectionSpec::of::<AgentConfig>(),
        SectionSpec::of::<HttpConfig>(),
        SectionSpec::of::<ControlConfig>(),
        SectionSpec::of::<SupervisorConfig>(),
        SectionSpec::of::<MetricsConfig>(),
    ]
}

/// The resolved configuration: agent-wide sections as fields, part sections by path.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub agent: AgentConfig,
    pub http: HttpConfig,
    pub control: ControlConfig,
    pub supervisor: SupervisorConfig,
    pub metrics: MetricsConfig,
    /// Every part section that was loaded, by its dotted path.
    sections: BTreeMap<&'static str, LoadedSection>,
    /// The part sections this configuration knows (to re-validate an edit).
    specs: Arc<[SectionSpec]>,
}

impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.agent == other.agent
            && self.http == other.http
            && self.control == other.control
            && self.supervisor == other.supervisor
            && self.metrics == other.metrics
            && self.sections.len() == other.sections.len()
            && self
                .sections
                .iter()
                .all(|(path, s)| other.sections.get(path).is_some_and(|o| o.json == s.json))
    }
}

impl Config {
    /// Every key at its default, for the given part sections.
    pub fn defaults(specs: Arc<[SectionSpec]>) -> Result<Config, ConfigError> {
        let figment = Figment::from(figment::providers::Serialized::defaults(
            load::default_tree(&specs),
        ));
        Config::from_figment(&figment, specs)
    }

    /// Extracts and validates every section from merged sources.
    fn from_figment(figment: &Figment, specs: Arc<[SectionSpec]>) -> Result<Config, ConfigError> {
        load::check_unknown_sections(figment, &specs)?;
        let typed = |spec: SectionSpec| spec.load(figment);
        let agent = typed(SectionSpec::of::<AgentConfig>())?;
        let http = typed(SectionSpec::of::<HttpConfig>())?;
        let control = typed(SectionSpec::of::<ControlConfig>())?;
        let supervisor = typed(SectionSpec::of::<SupervisorConfig>())?;
        let metrics = typed(SectionSpec::of::<MetricsConfig>())?;
        let mut sections = BTreeMap::new();
        for spec in specs.iter() {
            sections.insert(spec.path, spec.load(figment)?);
        }
        Ok(Config {
            agent: downcast(&agent),
            http: downcast(&http),
            control: downcast(&control),
            supervisor: downcast(&supervisor),
            metrics: downcast(&metrics),
            sections,
            specs,
        })
    }

    /// The typed section of a part; its defaults when this configuration did not load it.
    pub fn section<S: Section>(&self) -> Arc<S> {
        self.sections
            .get(S::PATH)
            .and_then(|loaded| loaded.typed.clone().downcast::<S>().ok())
            .unwrap_or_default()
    }

    /// Replaces a part section (tests and programmatic set-up); validated like a loaded one.
    pub fn with_section<S: Section>(mut self, section: S) -> Result<Config, ConfigError> {
        section::check(&section)?;
        self.sections.insert(S::PATH, LoadedSection::new(section));
        Ok(self)
    }

    /// A section as JSON (`Null` when not loaded): what a reconfiguration diffs.
    pub fn section_json(&self, path: &str) -> serde_json::Value {
        self.sections
            .get(path)
            .map(|s| s.json.clone())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The part sections this configuration was loaded with.
    pub fn specs(&self) -> &[SectionSpec] {
        &self.specs
    }

    /// The whole configuration as one tree, sections at their paths.
    pub fn to_tree(&self) -> serde_json::Value {
        let mut tree = serde_json::Map::new();
        let mut put =
            |path: &str, value: serde_json::Value| load::insert_json(&mut tree, path, value);
        put(
            "agent",
            serde_json::to_value(&self.agent).unwrap_or_default(),
        );
        put("http", serde_json::to_value(&self.http).unwrap_or_default());
        put(
            "control",
            serde_json::to_value(&self.control).unwrap_or_default(),
        );
        put(
            "supervisor",
            serde_json::to_value(&self.supervisor).unwrap_or_default(),
        );
        put(
            "metrics",
            serde_json::to_value(&self.metrics).unwrap_or_default(),
        );
        for (path, section) in &self.sections {
            put(path, section.json.clone());
        }
        serde_json::Value::Object(tree)
    }
}

impl Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_tree().serialize(serializer)
    }
}

fn downcast<S: Section>(loaded: &LoadedSection) -> S {
    loaded
        .typed
        .clone()
        .downcast::<S>()
        .map(|s| (*s).clone())
        .unwrap_or_default()
}

/// Shortest tick a probe may ask for: keeps map reads and link checks cheap.
pub fn check_interval_ms(interval_ms: u64) -> Result<(), String> {
    if interval_ms < 100 {
        return Err(format!(
            "interval_ms must be at least 100 (got {interval_ms})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
