//! Upstream HUATUO's command-line flags (`cmd/huatuo-bamai/cli.go`), accepted so its command
//! lines keep working: each one that has an equivalent here becomes our flag or key with a
//! one-line note naming it; the rest are accepted and ignored with a note saying why.

use std::path::{Path, PathBuf};

use crate::config::upstream::{tracer, Tracer};
use crate::config::FlagOverrides;

/// Upstream's long flag names (also accepted with one dash, as Go's flag parsers take them:
/// `-region x`).
pub const UPSTREAM_FLAGS: [&str; 12] = [
    "config",
    "config-dir",
    "bpf-dir",
    "tools-bin-dir",
    "region",
    "enable-cgroup",
    "disable-kubelet",
    "disable-storage",
    "disable-tracing",
    "log-debug",
    "dry-run",
    "procfs-prefix",
];

/// The upstream flags as given (`--region`, `--config`, `--dry-run` are ours as well).
#[derive(Debug, Clone, Default)]
pub struct UpstreamFlags {
    pub config_dir: Option<PathBuf>,
    pub bpf_dir: Option<PathBuf>,
    pub tools_bin_dir: Option<PathBuf>,
    pub enable_cgroup: bool,
    pub disable_kubelet: bool,
    pub disable_storage: bool,
    pub disable_tracing: Vec<String>,
    pub log_debug: bool,
    pub procfs_prefix: Option<PathBuf>,
}

/// Rewrites Go-style single-dash long flags (`-region x`, `-config=a.toml`) to their double-dash
/// form, so one parser sees them.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .map(|arg| {
            let single = arg.strip_prefix('-').filter(|rest| !rest.starts_with('-'));
            match single {
                Some(rest) if UPSTREAM_FLAGS.contains(&rest.split('=').next().unwrap_or(rest)) => {
                    format!("-{arg}")
                }
                _ => arg,
            }
        })
        .collect()
}

/// Applies the upstream flags to our config path and flag overrides; returns the notes to print
/// (one line each) or an error naming the flag. `probes` are our probe names.
pub fn apply(
    upstream: &UpstreamFlags,
    config: &mut Option<PathBuf>,
    flags: &mut FlagOverrides,
    probes: &[&str],
) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    if let Some(dir) = &upstream.config_dir {
        let path = config_in_dir(dir, config.as_deref());
        notes.push(format!(
            "--config-dir is upstream's flag; ours: --config {}",
            path.display()
        ));
        *config = Some(path);
    }
    if let Some(dir) = &upstream.bpf_dir {
        notes.push(format!(
            "--bpf-dir {} ignored: the BPF programs are embedded in this binary",
            dir.display()
        ));
    }
    if let Some(dir) = &upstream.tools_bin_dir {
        notes.push(format!(
            "--tools-bin-dir {} ignored: this agent runs no external tools (/tasks runs the profiler in-process)",
            dir.display()
        ));
    }
    if upstream.enable_cgroup {
        notes.push(
            "--enable-cgroup ignored: no self cgroup limit here; limit the agent with its \
             DaemonSet resources or systemd CPUQuota=/MemoryMax= ([sampler] budget_ratio caps \
             probe overhead)"
                .into(),
        );
    }
    if upstream.disable_kubelet {
        for key in ["containers.kubelet_url", "containers.kubelet_https_url"] {
            flags.settings.push((key.into(), serde_json::json!("")));
        }
        notes.push(
            "--disable-kubelet is upstream's flag; ours: [containers] kubelet_url = \"\" and \
             kubelet_https_url = \"\""
                .into(),
        );
    }
    if upstream.disable_storage {
        flags.settings.push((
            "events.elasticsearch.enabled".into(),
            serde_json::json!(false),
        ));
        notes.push(
            "--disable-storage is upstream's flag; ours: [events.elasticsearch] enabled = false \
             (the embedded event store stays on)"
                .into(),
        );
    }
    if upstream.log_debug {
        if flags.log_level.is_none() {
            flags.log_level = Some("debug".into());
        }
        notes.push("--log-debug is upstream's flag; ours: --log-level debug".into());
    }
    if let Some(prefix) = &upstream.procfs_prefix {
        let procfs = prefix.join("proc");
        let sysfs = prefix.join("sys");
        notes.push(format!(
            "--procfs-prefix is upstream's flag; ours: --procfs-root {} --sysfs-root {}",
            procfs.display(),
            sysfs.display()
        ));
        flags.procfs_root.get_or_insert(procfs);
        flags.sysfs_root.get_or_insert(sysfs);
    }
    if !upstream.disable_tracing.is_empty() {
        let mut ours = Vec::new();
        for name in &upstream.disable_tracing {
            match tracer(name) {
                Tracer::Probe(probe) => ours.push(probe.to_string()),
                Tracer::Missing => notes.push(format!(
                    "--disable-tracing {name}: no such part here; nothing to disable"
                )),
                Tracer::Unknown if probes.contains(&name.as_str()) => ours.push(name.clone()),
                Tracer::Unknown => {
                    return Err(format!(
                        "--disable-tracing: `{name}` is neither an upstream tracer name nor one \
                         of our probes ({})",
                        probes.join(", ")
                    ))
                }
            }
        }
        ours.dedup();
        if !ours.is_empty() {
            notes.push(format!(
                "--disable-tracing is upstream's flag; ours: --disable {}",
                ours.join(",")
            ));
        }
        flags.disable.extend(ours);
    }
    Ok(notes)
}

/// `--config-dir D [--config F]`: upstream reads D/F. Without F, our file name, or upstream's
/// when only that exists (then the loader tells the user to import it).
fn config_in_dir(dir: &Path, config: Option<&Path>) -> PathBuf {
    match config {
        Some(file) if file.is_absolute() => file.to_path_buf(),
        Some(file) => dir.join(file),
        None => {
            let ours = dir.join("huatuo-bamai.toml");
            let theirs = dir.join("huatuo-bamai.conf");
            if !ours.exists() && theirs.exists() {
                theirs
            } else {
                ours
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBES: [&str; 4] = ["softirq", "memory_reclaim", "qdisc", "pressure"];

    fn applied(upstream: UpstreamFlags) -> (Option<PathBuf>, FlagOverrides, Vec<String>) {
        let mut config = None;
        let mut flags = FlagOverrides::default();
        let notes = apply(&upstream, &mut config, &mut flags, &PROBES).unwrap();
        (config, flags, notes)
    }

    #[test]
    fn single_dash_upstream_flags_become_double_dash() {
        let args = [
            "bin",
            "-region",
            "r1",
            "-dry-run",
            "-x",
            "--listen",
            "-config=a.toml",
        ];
        assert_eq!(
            normalize_args(args.map(String::from)),
            [
                "bin",
                "--region",
                "r1",
                "--dry-run",
                "-x",
                "--listen",
                "--config=a.toml"
            ]
        );
    }

    #[test]
    fn upstream_flags_map_to_ours_with_a_note_each() {
        let (_, flags, notes) = applied(UpstreamFlags {
            disable_kubelet: true,
            disable_storage: true,
            log_debug: true,
            procfs_prefix: Some("/host".into()),
            disable_tracing: vec![
                "netdev_qdisc".into(),
                "memory_free".into(),
                "metax_gpu".into(),
                "pressure".into(),
            ],
            ..Default::default()
        });
        assert_eq!(flags.log_level.as_deref(), Some("debug"));
        assert_eq!(flags.procfs_root, Some(PathBuf::from("/host/proc")));
        assert_eq!(flags.sysfs_root, Some(PathBuf::from("/host/sys")));
        assert_eq!(flags.disable, ["qdisc", "memory_reclaim", "pressure"]);
        assert_eq!(
            flags.settings,
            vec![
                ("containers.kubelet_url".to_string(), serde_json::json!("")),
                (
                    "containers.kubelet_https_url".to_string(),
                    serde_json::json!("")
                ),
                (
                    "events.elasticsearch.enabled".to_string(),
                    serde_json::json!(false)
                ),
            ]
        );
        let text = notes.join("\n");
        for expected in [
            "--disable-kubelet is upstream's flag; ours: [containers] kubelet_url",
            "--disable-storage is upstream's flag; ours: [events.elasticsearch] enabled = false",
            "--log-debug is upstream's flag; ours: --log-level debug",
            "--procfs-root /host/proc --sysfs-root /host/sys",
            "--disable-tracing metax_gpu: no such part here",
            "ours: --disable qdisc,memory_reclaim,pressure",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        assert_eq!(notes.len(), 6, "{text}");
    }

    #[test]
    fn ignored_flags_say_why_and_change_nothing() {
        let (config, flags, notes) = applied(UpstreamFlags {
            bpf_dir: Some("/opt/bpf".into()),
            tools_bin_dir: Some("/opt/bin".into()),
            enable_cgroup: true,
            ..Default::default()
        });
        assert!(config.is_none());
        assert!(flags.settings.is_empty() && flags.disable.is_empty());
        let text = notes.join("\n");
        assert!(
            text.contains("--bpf-dir /opt/bpf ignored: the BPF programs are embedded"),
            "{text}"
        );
        assert!(text.contains("--tools-bin-dir /opt/bin ignored"), "{text}");
        assert!(text.contains("--enable-cgroup ignored"), "{text}");
    }

    #[test]
    fn unknown_tracer_is_an_error_naming_it() {
        let mut config = None;
        let err = apply(
            &UpstreamFlags {
                disable_tracing: vec!["nosuch".into()],
                ..Default::default()
            },
            &mut config,
            &mut FlagOverrides::default(),
            &PROBES,
        )
        .unwrap_err();
        assert!(
            err.starts_with("--disable-tracing: `nosuch` is neither"),
            "{err}"
        );
    }

    #[test]
    fn config_dir_joins_the_file_and_prefers_ours() {
        let dir = tempfile::tempdir().unwrap();
        let (config, _, notes) = applied(UpstreamFlags {
            config_dir: Some(dir.path().into()),
            ..Default::default()
        });
        assert_eq!(config, Some(dir.path().join("huatuo-bamai.toml")));
        assert!(notes[0].contains("ours: --config"), "{notes:?}");
        // Only upstream's file there: that one, so the loader can point at `config import`.
        std::fs::write(dir.path().join("huatuo-bamai.conf"), "BlackList = []\n").unwrap();
        let mut config = None;
        apply(
            &UpstreamFlags {
                config_dir: Some(dir.path().into()),
                ..Default::default()
            },
            &mut config,
            &mut FlagOverrides::default(),
            &PROBES,
        )
        .unwrap();
        assert_eq!(config, Some(dir.path().join("huatuo-bamai.conf")));
        let mut config = Some(PathBuf::from("other.toml"));
        let notes = apply(
            &UpstreamFlags {
                config_dir: Some(dir.path().into()),
                ..Default::default()
            },
            &mut config,
            &mut FlagOverrides::default(),
            &PROBES,
        )
        .unwrap();
        assert_eq!(config, Some(dir.path().join("other.toml")));
        assert_eq!(notes.len(), 1);
    }
}
