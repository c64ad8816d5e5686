//! Live edits: `set KEY VALUE` on a running configuration, and which keys need a restart.

use figment::providers::Serialized;
use figment::value::{Dict, Value};
use figment::Figment;

use super::agent_wide::COLD_AGENT_KEYS;
use super::load::insert_dotted;
use super::{agent_wide_sections, Config, ConfigError, Live};

impl Config {
    /// Whether a dotted key needs an agent restart to change.
    pub fn is_cold_key(&self, key: &str) -> bool {
        let under = |path: &str| key == path || key.starts_with(&format!("{path}."));
        COLD_AGENT_KEYS.iter().any(|k| under(k))
            || agent_wide_sections()
                .iter()
                .chain(self.specs().iter())
                .filter(|s| s.live == Live::RestartAgent)
                .any(|s| under(s.path))
    }

    /// Returns a copy with `key` (dotted, e.g. `probes.softirq.enabled`) set to `raw`, validated as a
    /// whole. `raw` is read as a TOML value (`true`, `5`, `"text"`); bare words are strings.
    pub fn with_key(&self, key: &str, raw: &str) -> Result<Config, ConfigError> {
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ConfigError::BadValue {
                key: key.to_string(),
                reason: "expected a dotted key such as probes.softirq.enabled".into(),
            });
        }
        if self.is_cold_key(key) {
            return Err(ConfigError::Cold {
                key: key.to_string(),
            });
        }
        let mut overlay = Dict::new();
        insert_dotted(&mut overlay, key, parse_value(raw));
        let figment = Figment::from(Serialized::defaults(self.to_tree()))
            .merge(Serialized::defaults(overlay));
        Config::from_figment(&figment, self.specs.clone()).map_err(|e| match e {
            ConfigError::Invalid(reason) => ConfigError::BadValue {
                key: key.to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Dotted keys (or whole sections) whose values differ between two configs and need an
    /// agent restart.
    pub fn cold_changes(&self, other: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let agent = [
            (
                self.agent.bpf_stats != other.agent.bpf_stats,
                "agent.bpf_stats",
            ),
            (self.agent.region != other.agent.region, "agent.region"),
            (
                self.agent.hostname != other.agent.hostname,
                "agent.hostname",
            ),
            (
                self.agent.procfs_root != other.agent.procfs_root,
                "agent.procfs_root",
            ),
            (
                self.agent.sysfs_root != other.agent.sysfs_root,
                "agent.sysfs_root",
            ),
            (self.http != other.http, "http"),
            (self.control != other.control, "control"),
        ];
        changed.extend(agent.iter().filter(|(c, _)| *c).map(|(_, k)| *k));
        for spec in self.specs().iter().filter(|s| s.live == Live::RestartAgent) {
            if self.section_json(spec.path) != other.section_json(spec.path) {
                changed.push(spec.path);
            }
        }
        changed
    }
}

fn parse_value(raw: &str) -> Value {
    let raw = raw.trim();
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .and_then(|value| value.try_into::<Value>().ok())
        .unwrap_or_else(|| Value::from(raw.to_string()))
}
