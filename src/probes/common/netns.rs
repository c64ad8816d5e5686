//! The network namespaces the net probes (netdev, netstat, sockstat, arp) read: the host's through
//! pid 1 (`<procfs_root>/1/net/...`, as upstream) and each normal container's through its init
//! pid. As upstream, a container on the host network (its init pid in the host's namespace) is
//! not skipped: its series repeat the host's under its container labels.

use std::path::PathBuf;
use std::sync::Arc;

use crate::containers::{Container, MetricScope};
use crate::core::probe::ProbeContext;

/// A container and the network namespace it is read through.
#[derive(Debug, Clone)]
pub struct ContainerNetns {
    pub container: Arc<Container>,
    /// `<procfs_root>/<init pid>/net`.
    pub net_dir: PathBuf,
}

/// `<procfs_root>/1/net`: the host network namespace.
pub fn host_net_dir(ctx: &ProbeContext) -> PathBuf {
    ctx.procfs("1/net")
}

/// The containers the net families export (upstream's `pod.NormalContainers()`) that have an
/// init pid, in the set's order (by id).
pub fn container_netns(ctx: &ProbeContext) -> Vec<ContainerNetns> {
    let containers = ctx.containers.borrow().clone();
    containers
        .for_metrics(MetricScope::Normal)
        .filter_map(|container| {
            let pid = container.init_pid?;
            Some(ContainerNetns {
                container: container.clone(),
                net_dir: ctx.procfs(&pid.to_string()).join("net"),
            })
        })
        .collect()
}
