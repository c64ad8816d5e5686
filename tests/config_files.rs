//! The shipped configuration files are generated from the code (`huatuo-bamai config default`,
//! scripts/gen-config.sh): this fails when a part's defaults or docs changed and the files were
//! not regenerated, and checks that what we ship loads.

use huatuo_bamai::config::template;
use huatuo_bamai::config::{Config, ConfigSource, FlagOverrides};
use huatuo_bamai::containers::DAEMONSET_PATHS;
use huatuo_bamai::registry;

const FIX: &str = "run scripts/gen-config.sh to regenerate it";

fn root(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn load(path: &std::path::Path) -> Config {
    ConfigSource {
        path: path.to_path_buf(),
        explicit: true,
        flags: FlagOverrides::default(),
        sections: registry::sections(),
    }
    .load()
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn shipped_config_is_the_generated_one_and_loads() {
    let path = root("config/huatuo-bamai.toml");
    let shipped = std::fs::read_to_string(&path).unwrap();
    let generated = template::render(&registry::sections(), &[]);
    assert!(
        shipped == generated,
        "config/huatuo-bamai.toml has drifted from the code; {FIX}"
    );
    let defaults = Config::defaults(registry::sections()).unwrap();
    assert_eq!(load(&path), defaults, "the shipped file holds the defaults");
}

#[test]
fn configmap_is_the_generated_daemonset_variant_and_loads() {
    let manifest = std::fs::read_to_string(root("deploy/kubernetes/daemonset.yaml")).unwrap();
    let embedded: String = manifest
        .lines()
        .skip_while(|l| !l.contains("huatuo-bamai.toml: |"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let generated = template::render(&registry::sections(), &DAEMONSET_PATHS);
    assert!(
        embedded == generated,
        "the ConfigMap in deploy/kubernetes/daemonset.yaml has drifted from the code; {FIX}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in-cluster.toml");
    std::fs::write(&path, &embedded).unwrap();
    let in_cluster = load(&path);
    let containers = in_cluster.section::<huatuo_bamai::containers::ContainersConfig>();
    assert_eq!(
        containers.docker_socket,
        std::path::PathBuf::from("/host/var/run/docker.sock")
    );
}

#[test]
fn every_part_section_is_documented_in_the_file() {
    let text = template::render(&registry::sections(), &[]);
    for spec in registry::sections().iter() {
        let header = format!("\n[{}]\n# ", spec.path);
        assert!(text.contains(&header), "[{}] has no doc comment", spec.path);
    }
}
