//! containerd's OCI bundles: `<state dir>/<namespace>/<id>/config.json`, one namespace per
//! client (`k8s.io` for the CRI plugin, `moby` for Docker, `default` for nerdctl ...).

use std::path::{Path, PathBuf};

use super::oci::{read_bundle, BundleError, BundleMeta};
use crate::containers::model::Runtime;

/// containerd's namespaces: the subdirectories of its state dir, sorted; none when the
/// directory is not configured or does not exist (no containerd here).
pub(super) fn namespaces(state_dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
    if state_dir.as_os_str().is_empty() {
        return Ok(Vec::new());
    }
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BundleError::Read {
                path: state_dir.to_path_buf(),
                source,
            })
        }
    };
    let mut namespaces: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    namespaces.sort();
    Ok(namespaces)
}

/// The bundle of container `id` in the first of `namespaces` that has one.
pub(super) fn find(namespaces: &[PathBuf], id: &str) -> Result<Option<BundleMeta>, BundleError> {
    for namespace in namespaces {
        let path = namespace.join(id).join("config.json");
        if let Some(mut meta) = read_bundle(&path)? {
            // Docker runs its containers in containerd's `moby` namespace.
            meta.runtime = if namespace.file_name().is_some_and(|n| n == "moby") {
                Runtime::Docker
            } else {
                Runtime::Containerd
            };
            return Ok(Some(meta));
        }
    }
    Ok(None)
}
