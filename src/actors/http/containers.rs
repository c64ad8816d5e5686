//! `GET /containers/json[?container_id=<64 hex>]` in upstream's shape (`internal/pod/container.go`:
//! `id, name, hostname, type, qos, net_ip_address, net_namespace_inum, net_namespace_cookie,
//! init_pid, cgroup_path, cgroup_css, labels{HostNamespace}`), with our fields (`cgroup_id`,
//! `runtime`, `image`, `pod`, …) as additions. `cgroup_css` is empty: we attribute by cgroup id,
//! not by kernel css address; `net_namespace_cookie` is 0 (not read).

use std::os::unix::fs::MetadataExt;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::envelope::{data, error_response};
use super::Shared;
use crate::containers::Container;

#[derive(Deserialize)]
pub struct ContainerQuery {
    container_id: Option<String>,
}

/// The inode of a process's network namespace (upstream's `net_namespace_inum`), 0 if unreadable.
fn netns_inum(procfs: &std::path::Path, pid: Option<u32>) -> u64 {
    pid.and_then(|pid| std::fs::metadata(procfs.join(format!("{pid}/ns/net"))).ok())
        .map_or(0, |meta| meta.ino())
}

fn upstream_view(container: &Container, procfs: &std::path::Path) -> Value {
    let mut view = serde_json::to_value(container).unwrap_or_else(|_| json!({}));
    if let Value::Object(fields) = &mut view {
        let upstream = json!({
            "type": container.kind.as_str(),
            "net_ip_address": "",
            "net_namespace_inum": netns_inum(procfs, container.init_pid),
            "net_namespace_cookie": 0,
            "init_pid": container.init_pid.unwrap_or(0),
            "cgroup_css": {},
            "labels": {"HostNamespace": container.namespace},
        });
        if let Value::Object(upstream) = upstream {
            fields.extend(upstream);
        }
    }
    view
}

pub async fn list(
    State(shared): State<Shared>,
    query: Result<Query<ContainerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if let Some(id) = &query.container_id {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("container_id must be 64 alphanumeric characters, got `{id}`"),
            );
        }
    }
    let set = shared.ctx.containers_tx.borrow().clone();
    let list: Vec<Value> = set
        .iter()
        .filter(|c| query.container_id.as_deref().is_none_or(|id| c.id == id))
        .map(|c| upstream_view(c, &shared.procfs_root))
        .collect();
    data(list)
}
