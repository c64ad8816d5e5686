#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.

//! The loader with sections of its own (the real parts' sections are tested in tests/config.rs):
//! layering, strictness, live edits and cold keys are properties of the loader, not of a part.

use std::path::PathBuf;
use std::sync::Arc;

use documented::{Documented, DocumentedFieldsOpt};
use figment::Jail;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// A probe-like section.
struct Gauge {
    /// On or off.
    enabled: bool,
    interval_ms: u64,
    /// Names; "BOGUS" is refused.
    names: Vec<String>,
}

impl Default for Gauge {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            names: vec!["a".into()],
        }
    }
}

impl Section for Gauge {
    const PATH: &'static str = "probes.gauge";

    fn validate(&self) -> Result<(), Invalid> {
        check_interval_ms(self.interval_ms)?;
        if self.names.iter().any(|n| n == "BOGUS") {
            return Err(Invalid::field("names", "`BOGUS` is not a name"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// A cold section with a child section owned by another part.
struct Store {
    days: u64,
    #[serde(skip_serializing)]
    remote: serde::de::IgnoredAny,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            days: 7,
            remote: serde::de::IgnoredAny,
        }
    }
}

impl Section for Store {
    const PATH: &'static str = "store";
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        if self.days == 0 {
            return Err(Invalid::field("days", "must be at least 1"));
        }
        Ok(())
    }
}

#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt,
)]
#[serde(deny_unknown_fields, default)]
/// The child of `store`.
struct Remote {
    url: String,
}

impl Section for Remote {
    const PATH: &'static str = "store.remote";
    const LIVE: Live = Live::RestartAgent;
}

fn specs() -> Arc<[SectionSpec]> {
    vec![
        SectionSpec::of::<Gauge>(),
        SectionSpec::of::<Store>(),
        SectionSpec::of::<Remote>(),
    ]
    .into()
}

fn source(path: &str, explicit: bool, flags: FlagOverrides) -> ConfigSource {
    ConfigSource {
        path: PathBuf::from(path),
        explicit,
        flags,
        sections: specs(),
    }
}

fn load(path: &str) -> Result<Config, ConfigError> {
    source(path, true, FlagOverrides::default()).load()
}

fn defaults() -> Config {
    Config::defaults(specs()).unwrap()
}

#[test]
fn defaults_match_documented_values() {
    let c = defaults();
    assert_eq!(c.http.listen, "0.0.0.0:19704");
    assert_eq!(c.control.socket, PathBuf::from("/run/huatuo/control.sock"));
    assert_eq!(c.supervisor.restart_backoff_initial_ms, 1000);
    assert_eq!(*c.section::<Gauge>(), Gauge::default());
    assert_eq!(c.section::<Store>().days, 7);
}

#[test]
fn layers_file_then_env_then_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "agent.toml",
            r#"
            [agent]
            region = "file-region"
            [probes.gauge]
            interval_ms = 5000
            enabled = false
            [store.remote]
            url = "http://x"
            "#,
        )?;
        jail.set_env("HUATUO_PROBES__GAUGE__INTERVAL_MS", "3000");
        jail.set_env("HUATUO_AGENT__REGION", "env-region");
        // Not a config key: must be ignored, not rejected.
        jail.set_env("HUATUO_REQUIRE_BPF", "1");
        let flags = FlagOverrides {
            region: Some("flag-region".into()),
            ..Default::default()
        };
        let c = source("agent.toml", true, flags)
            .load()
            .map_err(|e| e.to_string())?;
        assert_eq!(c.section::<Gauge>().interval_ms, 3000, "env beats file");
        assert_eq!(c.agent.region, "flag-region", "flags beat env");
        assert!(!c.section::<Gauge>().enabled, "file beats defaults");
        assert_eq!(
            c.section::<Gauge>().names,
            vec!["a"],
            "defaults fill the rest"
        );
        assert_eq!(c.section::<Remote>().url, "http://x", "a child section");
        Ok(())
    });
}

#[test]
fn unknown_key_names_key_and_file() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[probes.gauge]\nenabeld = true\n")?;
        let err = load("bad.toml").unwrap_err().to_string();
        // The key once, in full (figment's inner path must not be doubled).
        assert!(
            err.contains("`probes.gauge.enabeld`: unknown field"),
            "{err}"
        );
        assert!(err.contains("bad.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn unknown_section_or_probe_names_it_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("probe.toml", "[probes.gaueg]\nenabled = true\n")?;
        let err = load("probe.toml").unwrap_err().to_string();
        assert!(err.contains("unknown probe `gaueg`"), "{err}");
        assert!(err.contains("known: gauge"), "{err}");
        assert!(err.contains("probe.toml"), "{err}");
        jail.create_file("section.toml", "[smapler]\nenabled = true\n")?;
        let err = load("section.toml").unwrap_err().to_string();
        assert!(err.contains("unknown section `smapler`"), "{err}");
        assert!(err.contains("section.toml"), "{err}");
        jail.create_file("child.toml", "[store.remote]\nurl = 5\n")?;
        let err = load("child.toml").unwrap_err().to_string();
        assert!(err.contains("`store.remote.url`:"), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_type_names_key_and_file() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[probes.gauge]\ninterval_ms = \"fast\"\n")?;
        let err = load("bad.toml").unwrap_err().to_string();
        assert!(err.contains("probes.gauge.interval_ms"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_type_from_env_names_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("HUATUO_PROBES__GAUGE__ENABLED", "maybe");
        let err = source("absent.toml", false, FlagOverrides::default())
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("enabled"), "{err}");
        assert!(
            err.contains("(in environment variable HUATUO_PROBES__GAUGE__ENABLED)"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = load("/nonexistent/huatuo.toml").unwrap_err();
    assert!(matches!(err, ConfigError::FileMissing { .. }));
}

#[test]
fn semantic_validation_names_key() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[http]\nlisten = \"not-an-address\"\n")?;
        let err = load("bad.toml").unwrap_err().to_string();
        assert!(err.contains("http.listen"), "{err}");
        jail.create_file("days.toml", "[store]\ndays = 0\n")?;
        let err = load("days.toml").unwrap_err().to_string();
        assert!(err.contains("store.days"), "{err}");
        Ok(())
    });
}

#[test]
fn disable_flag_rejects_unknown_probe() {
    let flags = FlagOverrides {
        disable: vec!["nosuch".into()],
        ..Default::default()
    };
    let err = source("absent.toml", false, flags)
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown probe `nosuch`"), "{err}");
    let flags = FlagOverrides {
        disable: vec!["gauge".into()],
        ..Default::default()
    };
    let c = source("absent.toml", false, flags).load().unwrap();
    assert!(!c.section::<Gauge>().enabled);
}

#[test]
fn with_key_sets_typed_values() {
    let c = defaults();
    let c2 = c.with_key("probes.gauge.enabled", "false").unwrap();
    assert!(!c2.section::<Gauge>().enabled);
    let c3 = c2.with_key("probes.gauge.interval_ms", "2500").unwrap();
    assert_eq!(c3.section::<Gauge>().interval_ms, 2500);
    let c4 = c3.with_key("probes.gauge.names", r#"["x","y"]"#).unwrap();
    assert_eq!(c4.section::<Gauge>().names, vec!["x", "y"]);
    let c5 = c4.with_key("agent.log_level", "debug").unwrap();
    assert_eq!(c5.agent.log_level, "debug");
    assert!(!c5.section::<Gauge>().enabled, "earlier edits kept");
}

#[test]
fn with_key_bad_value_leaves_config_and_names_key() {
    let c = defaults();
    for (key, value, expect) in [
        ("probes.gauge.interval_ms", "soon", "interval_ms"),
        ("probes.gauge.interval_ms", "5", "at least 100"),
        ("probes.gauge.nosuch", "1", "nosuch"),
        ("probes.nosuch.enabled", "true", "nosuch"),
        ("probes.gauge.names", r#"["BOGUS"]"#, "BOGUS"),
        ("", "1", "dotted key"),
    ] {
        let err = c.with_key(key, value).unwrap_err().to_string();
        assert!(err.contains(expect), "{key}={value}: {err}");
    }
    assert_eq!(c, defaults());
}

#[test]
fn cold_keys_are_refused_live() {
    let c = defaults();
    for key in [
        "http.listen",
        "agent.region",
        "store.days",
        "store.remote.url",
    ] {
        let err = c.with_key(key, "1").unwrap_err();
        assert!(matches!(err, ConfigError::Cold { .. }), "{key}: {err}");
    }
    let mut other = defaults();
    other.agent.region = "x".into();
    assert_eq!(c.cold_changes(&other), vec!["agent.region"]);
    let other = defaults()
        .with_section(Store {
            days: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(c.cold_changes(&other), vec!["store"]);
    let err = defaults()
        .with_section(Store {
            days: 0,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.days"), "{err}");
}

#[test]
fn every_section_takes_environment_overrides() {
    // A top-level section whose HUATUO_* variables were filtered out would silently ignore them.
    Jail::expect_with(|jail| {
        jail.set_env("HUATUO_STORE__DAYS", "9");
        jail.set_env("HUATUO_METRICS__MAX_SERIES_PER_FAMILY", "5");
        let c = source("absent.toml", false, FlagOverrides::default())
            .load()
            .map_err(|e| e.to_string())?;
        assert_eq!(c.section::<Store>().days, 9);
        assert_eq!(c.metrics.max_series_per_family, 5);
        Ok(())
    });
    let tree = defaults().to_tree();
    let mut top: Vec<&str> = tree
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    top.sort_unstable();
    assert_eq!(top, load::top_level_names(&specs()));
}

#[test]
fn template_lists_every_key_with_its_doc_and_parses_back() {
    let text = template::render(&specs(), &[]);
    assert!(
        text.contains("[probes.gauge]\n# A probe-like section.\n# On or off.\nenabled = true\n")
    );
    assert!(text.contains("[store]\n# A cold section with a child section owned by another part. [restart for every key of this section]\ndays = 7\n"));
    assert!(text.contains("[store.remote]"));
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    let back: toml::Table = toml::from_str(&toml::to_string(&defaults()).unwrap()).unwrap();
    assert_eq!(parsed, back, "the template is the defaults");
}
