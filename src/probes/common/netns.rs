//! The network namespaces the net probes (netdev, netstat, sockstat, arp) read: the host's through
//! pid 1 (`<procfs_root>/1/net/...`, as upstream) and each container's through its init pid.
//! A container whose init pid is in the host's namespace (a host-network pod) is skipped: its
//! series would duplicate the host's under container labels.

use std::path::PathBuf;
use std::sync::Arc;

use crate::containers::Container;
use crate::core::probe::ProbeContext;

/// A container with a network namespace of its own.
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

/// Containers with an init pid outside the host network namespace, in the set's order (by id).
/// Namespaces are compared by the `ns/net` link target (`net:[<inode>]`); when either link
/// cannot be read (no permission, process gone) the container is kept: its files tell.
pub fn containers_with_own_netns(ctx: &ProbeContext) -> Vec<ContainerNetns> {
    let host_ns = std::fs::read_link(ctx.procfs("1/ns/net")).ok();
    let containers = ctx.containers.borrow().clone();
    containers
        .iter()
        .filter_map(|container| {
            let pid = container.init_pid?;
            let pid_dir = ctx.procfs(&pid.to_string());
            if let Some(host_ns) = &host_ns {
                if std::fs::read_link(pid_dir.join("ns/net")).ok().as_ref() == Some(host_ns) {
                    return None;
                }
            }
            Some(ContainerNetns {
                container: container.clone(),
                net_dir: pid_dir.join("net"),
            })
        })
        .collect()
}
