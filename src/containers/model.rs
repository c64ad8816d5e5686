//! What the agent knows about a container, keyed by the kernel's cgroup id.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::exposition::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
    Unknown,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
            Runtime::Unknown => "unknown",
        }
    }
}

/// Upstream's `container_level`: the pod's QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    Besteffort,
    Unknown,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "guaranteed",
            Qos::Burstable => "burstable",
            Qos::Besteffort => "besteffort",
            Qos::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Qos {
        match text.to_ascii_lowercase().as_str() {
            "guaranteed" => Qos::Guaranteed,
            "burstable" => Qos::Burstable,
            "besteffort" => Qos::Besteffort,
            _ => Qos::Unknown,
        }
    }
}

/// Upstream's `container_type`, spelled as upstream prints it (`daemonSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContainerKind {
    #[serde(rename = "normal")]
    Normal,
    /// A container named `istio-proxy`.
    #[serde(rename = "sidecar")]
    Sidecar,
    /// A container of a pod owned by a DaemonSet.
    #[serde(rename = "daemonSet")]
    Daemonset,
    /// Upstream's vocabulary has it; neither upstream nor we assign it yet.
    #[serde(rename = "node")]
    Node,
    /// A container of a static pod (kubelet manifest); upstream counts these as `normal`.
    #[serde(rename = "static")]
    Static,
    #[serde(rename = "unknown")]
    Unknown,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Normal => "normal",
            ContainerKind::Sidecar => "sidecar",
            ContainerKind::Daemonset => "daemonSet",
            ContainerKind::Node => "node",
            ContainerKind::Static => "static",
            ContainerKind::Unknown => "unknown",
        }
    }
}

/// Which containers a metric family has per-container series for by default: the containers
/// upstream's collector iterates (`pod.NormalContainers()` or `ContainersByType(...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricScope {
    /// `pod.NormalContainers()`: most families. Static pods are included: upstream types them
    /// `normal` (it never assigns `static`).
    Normal,
    /// `ContainersByType(Normal | Sidecar)`: cpu_util, cpu_stat, loadavg.
    NormalAndSidecar,
    /// `pod.Containers()`: iolatency.
    All,
}

impl MetricScope {
    pub fn includes(self, kind: ContainerKind) -> bool {
        use ContainerKind::*;
        match self {
            MetricScope::Normal => matches!(kind, Normal | Static),
            MetricScope::NormalAndSidecar => matches!(kind, Normal | Static | Sidecar),
            MetricScope::All => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Allow-listed pod labels and annotations.
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// Runtime container id (64 hex characters).
    pub id: String,
    /// Kernel cgroup id of the container's cgroup: what `bpf_get_current_cgroup_id()` returns
    /// (the cgroup v2 directory inode; on v1-only hosts the reference hierarchy's inode).
    pub cgroup_id: u64,
    /// Cgroup id of the container's cpu cgroup, which BPF reads from a task's cpu css on
    /// cgroup v1 (`task->cgroups->subsys[cpu_cgrp_id]->cgroup->kn->id`): the cpu hierarchy's
    /// directory inode on v1, else `cgroup_id`.
    pub cpu_cgroup_id: u64,
    /// The same for the memory controller (the memory hierarchy's directory inode on v1).
    pub memory_cgroup_id: u64,
    /// Cgroup id of the container's block-IO cgroup, which BPF reads from a request's bio: the
    /// blkio hierarchy's directory inode on cgroup v1, else `cgroup_id`.
    pub io_cgroup_id: u64,
    /// Path below each hierarchy's root, e.g. `/kubepods/burstable/pod<uid>/<id>`.
    pub cgroup_path: String,
    pub runtime: Runtime,
    pub name: String,
    pub hostname: String,
    pub kind: ContainerKind,
    pub qos: Qos,
    /// Kubernetes namespace (upstream's `container_hostnamespace`), empty without Kubernetes.
    pub namespace: String,
    pub image: String,
    pub pod: Option<PodInfo>,
    /// Lowest pid in the cgroup: used to read the container's network namespace.
    pub init_pid: Option<u32>,
}

impl Container {
    /// A container known from its cgroup alone (names filled by enrichment, when available).
    pub fn from_cgroup(
        id: &str,
        cgroup_id: u64,
        cgroup_path: &str,
        runtime: Runtime,
        qos: Qos,
    ) -> Self {
        let short = id.get(..12).unwrap_or(id).to_string();
        Self {
            id: id.to_string(),
            cgroup_id,
            io_cgroup_id: cgroup_id,
            cpu_cgroup_id: cgroup_id,
            memory_cgroup_id: cgroup_id,
            cgroup_path: cgroup_path.to_string(),
            runtime,
            name: short.clone(),
            hostname: short,
            kind: ContainerKind::Normal,
            qos,
            namespace: String::new(),
            image: String::new(),
            pod: None,
            init_pid: None,
        }
    }

    /// Upstream's container labels, in upstream's order.
    pub fn labels(&self) -> Labels {
        vec![
            ("container_host", self.hostname.clone()),
            ("container_name", self.name.clone()),
            ("container_type", self.kind.as_str().to_string()),
            ("container_level", self.qos.as_str().to_string()),
            ("container_hostnamespace", self.namespace.clone()),
        ]
    }

    /// Container labels plus `extra`.
    pub fn labels_with(&self, extra: &[(&'static str, &str)]) -> Labels {
        let mut labels = self.labels();
        labels.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        labels
    }
}

/// The containers on this host at one moment, sorted by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSet {
    containers: Vec<Arc<Container>>,
    by_cgroup_id: HashMap<u64, usize>,
    /// Kinds with per-container series in every family, beyond the family's [`MetricScope`]
    /// (`containers.also_export_types`).
    also_export: Vec<ContainerKind>,
}

impl ContainerSet {
    pub fn new(mut containers: Vec<Container>) -> Self {
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        containers.dedup_by(|a, b| a.id == b.id);
        let containers: Vec<Arc<Container>> = containers.into_iter().map(Arc::new).collect();
        let by_cgroup_id = containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.cgroup_id, i))
            .collect();
        Self {
            containers,
            by_cgroup_id,
            also_export: Vec::new(),
        }
    }

    /// Also exports series of containers of `kinds` in every family.
    pub fn with_also_export(mut self, kinds: &[ContainerKind]) -> Self {
        self.also_export = kinds.to_vec();
        self
    }

    /// The containers a metric family exports series for: those in its upstream `scope` plus
    /// the configured extra kinds. Event attribution uses [`ContainerSet::iter`] (every kind).
    pub fn for_metrics(&self, scope: MetricScope) -> impl Iterator<Item = &Arc<Container>> {
        self.containers
            .iter()
            .filter(move |c| scope.includes(c.kind) || self.also_export.contains(&c.kind))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Container>> {
        self.containers.iter()
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    pub fn by_cgroup_id(&self, cgroup_id: u64) -> Option<&Arc<Container>> {
        self.by_cgroup_id
            .get(&cgroup_id)
            .map(|&i| &self.containers[i])
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Container>> {
        self.containers
            .binary_search_by(|c| c.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.containers[i])
    }
}

/// The latest container set, shared with every collector.
pub type ContainerWatch = tokio::sync::watch::Receiver<Arc<ContainerSet>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, kind: ContainerKind) -> Container {
        let mut c = Container::from_cgroup(id, 1, "/x", Runtime::Containerd, Qos::Burstable);
        c.kind = kind;
        c
    }

    #[test]
    fn container_type_is_spelled_as_upstream() {
        let kinds = [
            ContainerKind::Normal,
            ContainerKind::Sidecar,
            ContainerKind::Daemonset,
            ContainerKind::Node,
            ContainerKind::Static,
            ContainerKind::Unknown,
        ];
        let printed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            printed,
            [
                "normal",
                "sidecar",
                "daemonSet",
                "node",
                "static",
                "unknown"
            ]
        );
        // Documents and config use the same spelling as the label.
        for kind in kinds {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ContainerKind>(&json).unwrap(), kind);
        }
        let labels = container("a", ContainerKind::Daemonset).labels();
        assert!(labels.contains(&("container_type", "daemonSet".to_string())));
    }

    #[test]
    fn a_misspelled_type_in_the_config_names_the_valid_ones() {
        let error = toml::from_str::<crate::containers::ContainersConfig>(
            "also_export_types = [\"daemonset\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("daemonset") && error.contains("daemonSet"),
            "{error}"
        );
    }

    #[test]
    fn each_scope_exports_upstreams_kinds_plus_the_configured_ones() {
        use ContainerKind::*;
        let set = ContainerSet::new(vec![
            container("1-normal", Normal),
            container("2-sidecar", Sidecar),
            container("3-daemonset", Daemonset),
            container("4-static", Static),
            container("5-unknown", Unknown),
        ]);
        let ids = |set: &ContainerSet, scope| -> Vec<String> {
            set.for_metrics(scope).map(|c| c.id.clone()).collect()
        };
        assert_eq!(ids(&set, MetricScope::Normal), ["1-normal", "4-static"]);
        assert_eq!(
            ids(&set, MetricScope::NormalAndSidecar),
            ["1-normal", "2-sidecar", "4-static"]
        );
        assert_eq!(ids(&set, MetricScope::All).len(), 5);
        let set = set.with_also_export(&[Daemonset]);
        assert_eq!(
            ids(&set, MetricScope::Normal),
            ["1-normal", "3-daemonset", "4-static"]
        );
        // Attribution still sees every container.
        assert_eq!(set.iter().count(), 5);
        assert!(set.by_id("5-unknown").is_some());
    }
}
