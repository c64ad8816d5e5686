//! Container discovery: containers are found in cgroupfs (so it works on hosts without
//! Kubernetes), keyed by kernel cgroup id, and named from the kubelet, Docker, or the OCI bundles
//! of containerd and CRI-O, whichever knows them (in that order). The discovery actor publishes
//! each new [`ContainerSet`] to every collector.

pub mod cgroupfs;
mod config;
pub mod enrich;
pub mod model;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cgroupfs::CgroupLayout;
pub use config::{ContainersConfig, DAEMONSET_PATHS};
pub use model::{
    Container, ContainerKind, ContainerSet, ContainerWatch, MetricScope, PodInfo, Qos, Runtime,
};

use enrich::{BundleDirs, BundleMeta, KubeContainer, LabelAllowList};

/// How long kubelet pod metadata is reused before asking again.
const KUBELET_REFRESH: Duration = Duration::from_secs(10);

/// Scan + enrichment with caches, owned by the discovery actor.
pub struct Discovery {
    layout: CgroupLayout,
    kubelet: enrich::kubelet::KubeletSource,
    docker_socket: PathBuf,
    allow: LabelAllowList,
    kube: HashMap<String, KubeContainer>,
    kube_fetched: Option<Instant>,
    /// Docker inspect results by container id: (name, hostname, image).
    docker: HashMap<String, (String, String, String)>,
    bundle_dirs: BundleDirs,
    /// containerd / CRI-O bundle metadata by container id; `None` when no runtime has a
    /// readable bundle for it (not looked up again while the container lives).
    bundles: HashMap<String, Option<BundleMeta>>,
    /// Sources that failed, so each failure is logged once until it recovers.
    failing: HashMap<&'static str, String>,
    /// `container_host` of DaemonSet containers (upstream: the node's hostname); empty keeps
    /// the pod's hostname.
    node_hostname: String,
    also_export: Vec<ContainerKind>,
}

impl Discovery {
    pub fn new(sysfs_root: &std::path::Path, config: &ContainersConfig) -> Self {
        Self {
            layout: CgroupLayout::detect(sysfs_root),
            kubelet: enrich::kubelet::KubeletSource::new(config),
            docker_socket: config.docker_socket.clone(),
            allow: LabelAllowList {
                labels: config.pod_labels.clone(),
                annotations: config.pod_annotations.clone(),
            },
            kube: HashMap::new(),
            kube_fetched: None,
            docker: HashMap::new(),
            bundle_dirs: BundleDirs {
                containerd_state_dir: config.containerd_state_dir.clone(),
                crio_storage_dir: config.crio_storage_dir.clone(),
            },
            bundles: HashMap::new(),
            failing: HashMap::new(),
            node_hostname: String::new(),
            also_export: config.also_export_types.clone(),
        }
    }

    /// The node's hostname, which DaemonSet containers report as `container_host` (as upstream).
    pub fn with_node_hostname(mut self, hostname: &str) -> Self {
        self.node_hostname = hostname.to_string();
        self
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    fn note(&mut self, source: &'static str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if self.failing.remove(source).is_some() {
                    tracing::info!(source, "container metadata source recovered");
                }
            }
            Err(e) => {
                if self.failing.get(source) != Some(&e) {
                    tracing::warn!(source, error = %e, "container metadata source unavailable; containers keep their cgroup names");
                }
                self.failing.insert(source, e);
            }
        }
    }

    /// One discovery round: scan cgroupfs (blocking IO, kept short), then enrich.
    pub async fn discover(&mut self) -> ContainerSet {
        let layout = self.layout.clone();
        let mut found = tokio::task::spawn_blocking(move || cgroupfs::scan(&layout))
            .await
            .unwrap_or_default();
        self.enrich_from_kubelet(&found).await;
        self.enrich_from_docker(&found).await;
        self.enrich_from_bundles(&found).await;
        for container in &mut found {
            if let Some(kube) = self.kube.get(&container.id) {
                enrich::apply_kube(container, kube);
            } else if let Some((name, hostname, image)) = self.docker.get(&container.id) {
                container.name = name.clone();
                if !hostname.is_empty() {
                    container.hostname = hostname.clone();
                }
                container.image = image.clone();
            } else if let Some(Some(meta)) = self.bundles.get(&container.id) {
                enrich::apply_bundle(container, meta);
            }
            // A DaemonSet pod runs one per node: upstream names it by the node.
            if container.kind == ContainerKind::Daemonset && !self.node_hostname.is_empty() {
                container.hostname = self.node_hostname.clone();
            }
        }
        // Forget metadata of containers that are gone.
        let live: std::collections::HashSet<&str> = found.iter().map(|c| c.id.as_str()).collect();
        self.docker.retain(|id, _| live.contains(id.as_str()));
        self.bundles.retain(|id, _| live.contains(id.as_str()));
        ContainerSet::new(found).with_also_export(&self.also_export)
    }

    /// Reads the containerd / CRI-O bundles of new containers that neither the kubelet nor
    /// Docker describes (blocking file reads, off the async threads).
    async fn enrich_from_bundles(&mut self, found: &[Container]) {
        if self.bundle_dirs.is_disabled() {
            return;
        }
        let wanted: Vec<String> = found
            .iter()
            .filter(|c| {
                !self.kube.contains_key(&c.id)
                    && !self.docker.contains_key(&c.id)
                    && !self.bundles.contains_key(&c.id)
            })
            .map(|c| c.id.clone())
            .collect();
        if wanted.is_empty() {
            return;
        }
        let dirs = self.bundle_dirs.clone();
        let Ok(results) = tokio::task::spawn_blocking(move || dirs.lookup(&wanted)).await else {
            return;
        };
        let mut first_error = None;
        for (id, result) in results {
            match result {
                Ok(meta) => {
                    self.bundles.insert(id, meta);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    self.bundles.insert(id, None);
                }
            }
        }
        self.note("bundles", first_error.map_or(Ok(()), Err));
    }

    async fn enrich_from_kubelet(&mut self, found: &[Container]) {
        if self.kubelet.is_disabled() {
            return;
        }
        let unknown = found.iter().any(|c| !self.kube.contains_key(&c.id));
        let stale = self
            .kube_fetched
            .is_none_or(|t| t.elapsed() > KUBELET_REFRESH);
        if !(stale
            || unknown
                && self
                    .kube_fetched
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(1)))
        {
            return;
        }
        self.kube_fetched = Some(Instant::now());
        let result = match self.kubelet.pods().await {
            Ok(body) => enrich::parse_kubelet_pods(&body, &self.allow).map(|map| {
                self.kube = map;
            }),
            Err(e) => Err(e),
        };
        self.note("kubelet", result);
    }

    async fn enrich_from_docker(&mut self, found: &[Container]) {
        if self.docker_socket.as_os_str().is_empty() || !self.docker_socket.exists() {
            return;
        }
        let wanted: Vec<String> = found
            .iter()
            .filter(|c| {
                c.runtime == Runtime::Docker
                    && !self.kube.contains_key(&c.id)
                    && !self.docker.contains_key(&c.id)
            })
            .map(|c| c.id.clone())
            .collect();
        for id in wanted {
            let path = format!("/containers/{id}/json");
            let result = match enrich::get_unix(&self.docker_socket, &path).await {
                Ok(body) => enrich::parse_docker_inspect(&body).map(|meta| {
                    self.docker.insert(id.clone(), meta);
                }),
                Err(e) => Err(e),
            };
            self.note("docker", result);
        }
    }
}

impl ContainerSet {
    /// The container a kernel task belongs to: by its default-hierarchy cgroup id, else by its
    /// memory cgroup id (the container's memory hierarchy directory inode) — on cgroup v1 hosts
    /// without a v2 mount, or where the runtime left the task's v2 cgroup outside the container.
    pub fn of_task(&self, cgroup_id: u64, memcg_id: u64) -> Option<&Container> {
        if let Some(container) = self.by_cgroup_id(cgroup_id) {
            return Some(container);
        }
        if memcg_id == 0 {
            return None;
        }
        self.iter()
            .find(|c| c.memory_cgroup_id == memcg_id)
            .map(|c| c.as_ref())
    }
}

/// A watch channel for the container set, starting empty.
pub fn channel() -> (
    tokio::sync::watch::Sender<Arc<ContainerSet>>,
    ContainerWatch,
) {
    tokio::sync::watch::channel(Arc::new(ContainerSet::default()))
}
