#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.

use super::*;
use figment::Jail;

fn source(path: &str, flags: FlagOverrides) -> ConfigSource {
    ConfigSource {
        path: PathBuf::from(path),
        explicit: true,
        flags,
    }
}

#[test]
fn defaults_match_documented_values() {
    let c = Config::default();
    assert_eq!(c.http.listen, "0.0.0.0:19704");
    assert_eq!(c.control.socket, PathBuf::from("/run/huatuo/control.sock"));
    assert!(c.probes.softirq.enabled && c.probes.runqlat.enabled && c.probes.loadavg.enabled);
    assert_eq!(c.supervisor.restart_backoff_initial_ms, 1000);
    c.validate().unwrap();
}

#[test]
fn layers_file_then_env_then_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "agent.toml",
            r#"
            [agent]
            region = "file-region"
            [probes.softirq]
            interval_ms = 5000
            [probes.runqlat]
            enabled = false
            "#,
        )?;
        jail.set_env("HUATUO_PROBES__SOFTIRQ__INTERVAL_MS", "3000");
        jail.set_env("HUATUO_AGENT__REGION", "env-region");
        // Not a config key: must be ignored, not rejected.
        jail.set_env("HUATUO_REQUIRE_BPF", "1");
        let flags = FlagOverrides {
            region: Some("flag-region".into()),
            ..Default::default()
        };
        let c = source("agent.toml", flags)
            .load()
            .map_err(|e| e.to_string())?;
        assert_eq!(c.probes.softirq.interval_ms, 3000, "env beats file");
        assert_eq!(c.agent.region, "flag-region", "flags beat env");
        assert!(!c.probes.runqlat.enabled, "file beats defaults");
        assert!(c.probes.loadavg.enabled, "defaults fill the rest");
        Ok(())
    });
}

#[test]
fn unknown_key_names_key_and_file() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[probes.softirq]\nenabeld = true\n")?;
        let err = source("bad.toml", FlagOverrides::default())
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("enabeld"), "{err}");
        assert!(err.contains("probes.softirq"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_type_names_key_and_file() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[probes.runqlat]\ninterval_ms = \"fast\"\n")?;
        let err = source("bad.toml", FlagOverrides::default())
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("interval_ms"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_type_from_env_names_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("HUATUO_PROBES__LOADAVG__ENABLED", "maybe");
        let err = ConfigSource {
            path: "absent.toml".into(),
            explicit: false,
            flags: Default::default(),
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(err.contains("enabled"), "{err}");
        assert!(
            err.to_uppercase()
                .contains("HUATUO_PROBES__LOADAVG__ENABLED"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = source("/nonexistent/huatuo.toml", FlagOverrides::default())
        .load()
        .unwrap_err();
    assert!(matches!(err, ConfigError::FileMissing { .. }));
}

#[test]
fn semantic_validation_names_key() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[http]\nlisten = \"not-an-address\"\n")?;
        let err = source("bad.toml", FlagOverrides::default())
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.listen"), "{err}");
        Ok(())
    });
}

#[test]
fn disable_flag_rejects_unknown_probe() {
    let flags = FlagOverrides {
        disable: vec!["nosuch".into()],
        ..Default::default()
    };
    let err = ConfigSource {
        path: "absent.toml".into(),
        explicit: false,
        flags,
    }
    .load()
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown probe `nosuch`"), "{err}");
}

#[test]
fn with_key_sets_typed_values() {
    let c = Config::default();
    let c2 = c.with_key("probes.softirq.enabled", "false").unwrap();
    assert!(!c2.probes.softirq.enabled);
    let c3 = c2.with_key("probes.softirq.interval_ms", "2500").unwrap();
    assert_eq!(c3.probes.softirq.interval_ms, 2500);
    let c4 = c3
        .with_key("probes.softirq.vectors", r#"["NET_RX","TIMER"]"#)
        .unwrap();
    assert_eq!(c4.probes.softirq.vectors, vec!["NET_RX", "TIMER"]);
    let c5 = c4.with_key("agent.log_level", "debug").unwrap();
    assert_eq!(c5.agent.log_level, "debug");
}

#[test]
fn with_key_bad_value_leaves_config_and_names_key() {
    let c = Config::default();
    for (key, value, expect) in [
        ("probes.softirq.interval_ms", "soon", "interval_ms"),
        ("probes.softirq.interval_ms", "5", "at least 100"),
        ("probes.softirq.nosuch", "1", "nosuch"),
        ("probes.nosuch.enabled", "true", "nosuch"),
        ("probes.softirq.vectors", r#"["BOGUS"]"#, "BOGUS"),
        ("", "1", "dotted key"),
    ] {
        let err = c.with_key(key, value).unwrap_err().to_string();
        assert!(err.contains(expect), "{key}={value}: {err}");
    }
    assert_eq!(c, Config::default());
}

#[test]
fn cold_keys_are_refused_live() {
    let err = Config::default()
        .with_key("http.listen", "127.0.0.1:1")
        .unwrap_err();
    assert!(matches!(err, ConfigError::Cold { .. }), "{err}");
    let mut other = Config::default();
    other.agent.region = "x".into();
    assert_eq!(Config::default().cold_changes(&other), vec!["agent.region"]);
}

#[test]
fn shipped_config_file_is_valid_and_complete() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/huatuo-bamai.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let shipped: Config = toml::from_str(&text).unwrap();
    shipped.validate().unwrap();
    // Every key is written out, so the file documents every default.
    let written: toml::Table = toml::from_str(&text).unwrap();
    let defaults: toml::Table =
        toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap();
    fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            let key = format!("{prefix}{k}");
            match v {
                toml::Value::Table(inner) => keys(inner, &format!("{key}."), out),
                _ => out.push(key),
            }
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    keys(&written, "", &mut a);
    keys(&defaults, "", &mut b);
    a.sort();
    b.sort();
    assert_eq!(a, b, "config/huatuo-bamai.toml must list every key");

    // The DaemonSet's ConfigMap carries the same file (paths adapted): same keys, valid.
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/daemonset.yaml"
    );
    let manifest = std::fs::read_to_string(manifest).unwrap();
    let embedded: String = manifest
        .lines()
        .skip_while(|l| !l.contains("huatuo-bamai.toml: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let in_cluster: Config = toml::from_str(&embedded).expect("ConfigMap config parses");
    in_cluster.validate().unwrap();
    let mut c = Vec::new();
    keys(&toml::from_str(&embedded).unwrap(), "", &mut c);
    c.sort();
    assert_eq!(
        c, b,
        "the ConfigMap in deploy/kubernetes/daemonset.yaml must list every key"
    );
}

#[test]
fn events_keys_are_cold_and_validated() {
    let err = Config::default()
        .with_key("events.retention_days", "3")
        .unwrap_err();
    assert!(matches!(err, ConfigError::Cold { .. }), "{err}");
    let mut other = Config::default();
    other.events.max_store_mib = 64;
    assert_eq!(Config::default().cold_changes(&other), vec!["events"]);
    other.events.retention_days = 0;
    let err = other.validate().unwrap_err().to_string();
    assert!(err.contains("events.retention_days"), "{err}");
}

#[test]
fn every_section_takes_environment_overrides() {
    // A section missing from TOP_LEVEL_SECTIONS would silently ignore its HUATUO_* variables.
    let value = serde_json::to_value(Config::default()).unwrap();
    let mut sections: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    sections.sort_unstable();
    let mut listed = super::TOP_LEVEL_SECTIONS.to_vec();
    listed.sort_unstable();
    assert_eq!(sections, listed);
    Jail::expect_with(|jail| {
        jail.create_file("agent.toml", "[sampler]\nenabled = true\n")?;
        jail.set_env("HUATUO_SAMPLER__BUDGET_RATIO", "0.005");
        let c = source("agent.toml", FlagOverrides::default())
            .load()
            .map_err(|e| e.to_string())?;
        assert_eq!(c.sampler.budget_ratio, 0.005);
        Ok(())
    });
}
