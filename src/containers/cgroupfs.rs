//! cgroupfs layout (v1, v2, hybrid) and the scan that finds containers by their cgroup
//! directory names, for both cgroup drivers (cgroupfs: `kubepods/<qos>/pod<uid>/<id>`,
//! `docker/<id>`; systemd: `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//! `libpod-<id>.scope` under `kubepods-<qos>-pod<uid>.slice` or `system.slice`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::model::{Container, Qos, Runtime};

/// Deepest directory level searched for containers below a hierarchy root.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Unified hierarchy mounted at `root`.
    V2 { root: PathBuf },
    /// One directory per controller under `root`; `unified` is the v2 mount of a hybrid host.
    V1 {
        root: PathBuf,
        unified: Option<PathBuf>,
    },
}

impl CgroupLayout {
    /// Detects the layout under `<sysfs>/fs/cgroup`.
    pub fn detect(sysfs_root: &Path) -> CgroupLayout {
        let root = sysfs_root.join("fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return CgroupLayout::V2 { root };
        }
        let unified = root.join("unified");
        let unified = unified
            .join("cgroup.controllers")
            .exists()
            .then_some(unified);
        CgroupLayout::V1 { root, unified }
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, CgroupLayout::V2 { .. })
    }

    /// True when BPF must key per-container counts by a task's controller css (cpu, memory)
    /// rather than its default-hierarchy cgroup: on v1 and hybrid hosts the controllers live
    /// in the v1 hierarchies, and a container may have no v2 directory at all.
    pub fn keys_by_css(&self) -> bool {
        !self.is_v2()
    }

    /// Directory of `controller` (e.g. `cpu`, `memory`, `cpuacct`) for the cgroup at `rel`
    /// (`/` for the root cgroup). v1 co-mounts like `cpu,cpuacct` are found.
    pub fn dir(&self, controller: &str, rel: &str) -> PathBuf {
        let rel = rel.trim_start_matches('/');
        match self {
            CgroupLayout::V2 { root } => root.join(rel),
            CgroupLayout::V1 { root, .. } => v1_controller_root(root, controller).join(rel),
        }
    }

    /// The hierarchy scanned for containers.
    fn reference_root(&self) -> PathBuf {
        match self {
            CgroupLayout::V2 { root } => root.clone(),
            CgroupLayout::V1 { root, .. } => {
                let cpu = v1_controller_root(root, "cpu");
                if cpu.is_dir() {
                    cpu
                } else {
                    v1_controller_root(root, "memory")
                }
            }
        }
    }

    /// Kernel cgroup id of the cgroup at `rel`: its directory inode in the v2 hierarchy (what
    /// `bpf_get_current_cgroup_id()` returns), falling back to the reference hierarchy.
    fn cgroup_id(&self, rel: &str, reference_dir: &Path) -> u64 {
        let rel = rel.trim_start_matches('/');
        let v2_dir = match self {
            CgroupLayout::V2 { root } => Some(root.join(rel)),
            CgroupLayout::V1 { unified, .. } => unified.as_ref().map(|u| u.join(rel)),
        };
        v2_dir
            .and_then(|d| std::fs::metadata(d).ok())
            .or_else(|| std::fs::metadata(reference_dir).ok())
            .map(|m| m.ino())
            .unwrap_or(0)
    }
}

fn v1_controller_root(root: &Path, controller: &str) -> PathBuf {
    let direct = root.join(controller);
    if direct.is_dir() {
        return direct;
    }
    // Co-mounted controllers: cpu,cpuacct / net_cls,net_prio ...
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.split(',').any(|c| c == controller) && entry.path().is_dir() {
                return entry.path();
            }
        }
    }
    direct
}

fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Container id and runtime from a cgroup directory name, if it names a container.
pub fn parse_container_dir(name: &str) -> Option<(String, Option<Runtime>)> {
    let base = name.strip_suffix(".scope").unwrap_or(name);
    const PREFIXES: [(&str, Runtime); 5] = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("libpod-", Runtime::Podman),
        ("cri-o-", Runtime::Crio),
    ];
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = base.strip_prefix(prefix) {
            return is_container_id(id).then(|| (id.to_string(), Some(runtime)));
        }
    }
    is_container_id(base).then(|| (base.to_string(), None))
}

/// QoS class and pod uid from the Kubernetes part of a cgroup path.
pub fn parse_kube_path(rel: &str) -> (Qos, Option<String>) {
    let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    if !segments.iter().any(|s| s.starts_with("kubepods")) {
        return (Qos::Unknown, None);
    }
    let mut qos = Qos::Guaranteed;
    let mut uid = None;
    for segment in &segments {
        let slice = segment.strip_suffix(".slice").unwrap_or(segment);
        // cgroupfs driver: kubepods/burstable/pod<uid>
        match *segment {
            "burstable" => qos = Qos::Burstable,
            "besteffort" => qos = Qos::Besteffort,
            _ => {}
        }
        if let Some(rest) = segment.strip_prefix("pod") {
            if !rest.is_empty() && !segment.ends_with(".slice") {
                uid = Some(rest.to_string());
            }
        }
        // systemd driver: kubepods-burstable.slice, kubepods-burstable-pod<uid_with_underscores>.slice
        if let Some(rest) = slice.strip_prefix("kubepods-") {
            if rest.starts_with("burstable") {
                qos = Qos::Burstable;
            } else if rest.starts_with("besteffort") {
                qos = Qos::Besteffort;
            }
            if let Some((_, pod)) = rest.rsplit_once("pod") {
                if !pod.is_empty() {
                    uid = Some(pod.replace('_', "-"));
                }
            }
        }
    }
    (qos, uid)
}

fn runtime_from_path(rel: &str) -> Runtime {
    if rel.contains("/docker/") || rel.starts_with("/docker") {
        Runtime::Docker
    } else if rel.contains("libpod") || rel.contains("machine.slice") {
        Runtime::Podman
    } else {
        Runtime::Unknown
    }
}

/// Lowest pid listed in `cgroup.procs` of `dir`.
pub fn lowest_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .ok()?
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .min()
}

/// Every container cgroup below the reference hierarchy.
pub fn scan(layout: &CgroupLayout) -> Vec<Container> {
    let root = layout.reference_root();
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root, String::new(), 0)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let child_rel = format!("{rel}/{name}");
            if let Some((id, runtime)) = parse_container_dir(&name) {
                let (qos, _uid) = parse_kube_path(&child_rel);
                let runtime = runtime.unwrap_or_else(|| runtime_from_path(&child_rel));
                let cgroup_id = layout.cgroup_id(&child_rel, &entry.path());
                let mut container =
                    Container::from_cgroup(&id, cgroup_id, &child_rel, runtime, qos);
                container.init_pid = lowest_pid(&entry.path());
                // On v1 BPF reads a controller's cgroup (a request's blkio cgroup, a task's cpu
                // or memory css): its directory inode in that controller's hierarchy.
                if !layout.is_v2() {
                    let ino = |controller| {
                        std::fs::metadata(layout.dir(controller, &child_rel))
                            .map(|m| m.ino())
                            .ok()
                    };
                    container.io_cgroup_id = ino("blkio").unwrap_or(container.io_cgroup_id);
                    container.cpu_cgroup_id = ino("cpu").unwrap_or(container.cpu_cgroup_id);
                    container.memory_cgroup_id =
                        ino("memory").unwrap_or(container.memory_cgroup_id);
                }
                found.push(container);
                // A container's own sub-cgroups are not further containers.
                continue;
            }
            if depth + 1 < MAX_DEPTH {
                stack.push((entry.path(), child_rel, depth + 1));
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4a3b1c2d4a3b1c2d4a3b1c2d4a3b1c2d4a3b1c2d4a3b1c2d4a3b1c2d4a3b1c2d";

    fn fixture(layout: &str) -> CgroupLayout {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(layout)
            .join("sys");
        CgroupLayout::detect(&root)
    }

    #[test]
    fn finds_v1_cgroupfs_driver_containers() {
        let layout = fixture("cgroup-v1");
        assert!(!layout.is_v2());
        let found = scan(&layout);
        let summary: Vec<(String, &str, &str, Option<u32>)> = found
            .iter()
            .map(|c| {
                (
                    c.id[..6].to_string(),
                    c.runtime.as_str(),
                    c.qos.as_str(),
                    c.init_pid,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("be57ef".into(), "unknown", "besteffort", Some(4646)),
                ("c0ffee".into(), "unknown", "guaranteed", Some(4343)),
                ("d0cce7".into(), "docker", "unknown", Some(4242)),
            ]
        );
        assert!(found.iter().all(|c| c.cgroup_id != 0));
        assert!(
            found[2].cgroup_path.starts_with("/docker/d0cce7"),
            "{}",
            found[2].cgroup_path
        );
        // The same container's memory cgroup is found through the layout.
        assert!(layout
            .dir("memory", &found[2].cgroup_path)
            .join("cgroup.procs")
            .exists());
    }

    #[test]
    fn v1_containers_are_keyed_by_their_controller_hierarchy_dirs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cgroup-v1/sys/fs/cgroup");
        let ino = |controller_dir: &str, rel: &str| {
            std::fs::metadata(root.join(controller_dir).join(rel.trim_start_matches('/')))
                .unwrap()
                .ino()
        };
        // Pure v1 (no unified mount) and the fixture's hybrid layout map the same way: BPF
        // reads the task's cpu / memory / blkio cgroup, each its own hierarchy's directory.
        let pure = CgroupLayout::V1 {
            root: root.clone(),
            unified: None,
        };
        let hybrid = fixture("cgroup-v1");
        for layout in [&pure, &hybrid] {
            assert!(layout.keys_by_css());
            let found = scan(layout);
            assert_eq!(found.len(), 3);
            for c in &found {
                let rel = &c.cgroup_path;
                assert_eq!(c.cpu_cgroup_id, ino("cpu,cpuacct", rel), "{rel}");
                assert_eq!(c.memory_cgroup_id, ino("memory", rel), "{rel}");
                assert_eq!(c.io_cgroup_id, ino("blkio", rel), "{rel}");
                assert_ne!(c.cpu_cgroup_id, c.memory_cgroup_id, "{rel}");
            }
        }
        // Only the default-hierarchy id depends on the unified mount: the v2 directory where
        // there is one (hybrid, docker d0cce7), else the scanned (cpu) hierarchy's.
        let docker = |layout| {
            scan(layout)
                .into_iter()
                .find(|c| c.id.starts_with("d0cce7"))
                .unwrap()
        };
        let (in_pure, in_hybrid) = (docker(&pure), docker(&hybrid));
        assert_eq!(in_pure.cgroup_id, in_pure.cpu_cgroup_id);
        assert_eq!(in_hybrid.cgroup_id, ino("unified", &in_hybrid.cgroup_path));
        assert_eq!(in_hybrid.cpu_cgroup_id, in_pure.cpu_cgroup_id);
    }

    #[test]
    fn v2_containers_use_one_id_for_every_controller() {
        let layout = fixture("cgroup-v2");
        assert!(!layout.keys_by_css());
        for c in scan(&layout) {
            assert_eq!(
                [c.cpu_cgroup_id, c.memory_cgroup_id, c.io_cgroup_id],
                [c.cgroup_id; 3],
                "{}",
                c.cgroup_path
            );
        }
    }

    #[test]
    fn finds_v2_systemd_driver_containers_of_every_runtime() {
        let layout = fixture("cgroup-v2");
        assert!(layout.is_v2());
        let found = scan(&layout);
        let summary: Vec<(String, &str, &str)> = found
            .iter()
            .map(|c| (c.id[..6].to_string(), c.runtime.as_str(), c.qos.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("b0d3a9".into(), "podman", "unknown"),
                ("c0ffee".into(), "containerd", "guaranteed"),
                ("c210cc".into(), "crio", "burstable"),
                ("d0cce7".into(), "docker", "unknown"),
            ]
        );
        // cgroup id = the directory inode, as bpf_get_current_cgroup_id() reports it.
        let dir = layout.dir("cpu", &found[3].cgroup_path);
        assert_eq!(found[3].cgroup_id, std::fs::metadata(dir).unwrap().ino());
    }

    #[test]
    fn parses_every_runtime_naming() {
        for (name, runtime) in [
            (format!("docker-{ID}.scope"), Some(Runtime::Docker)),
            (
                format!("cri-containerd-{ID}.scope"),
                Some(Runtime::Containerd),
            ),
            (format!("crio-{ID}.scope"), Some(Runtime::Crio)),
            (format!("libpod-{ID}.scope"), Some(Runtime::Podman)),
            (ID.to_string(), None),
        ] {
            assert_eq!(
                parse_container_dir(&name),
                Some((ID.to_string(), runtime)),
                "{name}"
            );
        }
        assert_eq!(parse_container_dir("crio-conmon-abc.scope"), None);
        assert_eq!(parse_container_dir("system.slice"), None);
        assert_eq!(
            parse_container_dir(&format!("docker-{}.scope", &ID[1..])),
            None
        );
    }

    #[test]
    fn qos_and_pod_uid_from_both_drivers() {
        let uid = "0a1b2c3d-1111-2222-3333-444455556666";
        assert_eq!(
            parse_kube_path(&format!("/kubepods/burstable/pod{uid}/{ID}")),
            (Qos::Burstable, Some(uid.to_string()))
        );
        assert_eq!(
            parse_kube_path(&format!("/kubepods/pod{uid}/{ID}")),
            (Qos::Guaranteed, Some(uid.to_string()))
        );
        let systemd_uid = uid.replace('-', "_");
        assert_eq!(
            parse_kube_path(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{systemd_uid}.slice/cri-containerd-{ID}.scope"
            )),
            (Qos::Besteffort, Some(uid.to_string()))
        );
        assert_eq!(
            parse_kube_path(&format!(
                "/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-{ID}.scope"
            )),
            (Qos::Guaranteed, Some(uid.to_string()))
        );
        assert_eq!(
            parse_kube_path(&format!("/system.slice/docker-{ID}.scope")),
            (Qos::Unknown, None)
        );
    }
}
