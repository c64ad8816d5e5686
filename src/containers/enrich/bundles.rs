//! Where containerd and CRI-O keep the OCI bundles of running containers, and the lookup of a
//! container's bundle by its id in each of them.

use std::path::PathBuf;

use super::oci::{BundleError, BundleMeta};
use super::{containerd, crio};

/// Where containerd and CRI-O keep the OCI bundles of running containers; an empty path
/// disables that runtime.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BundleDirs {
    /// containerd's task state, `<dir>/<namespace>/<id>/config.json`.
    pub containerd_state_dir: PathBuf,
    /// CRI-O's container storage, `<dir>/<id>/userdata/config.json`.
    pub crio_storage_dir: PathBuf,
}

impl BundleDirs {
    pub fn is_disabled(&self) -> bool {
        self.containerd_state_dir.as_os_str().is_empty()
            && self.crio_storage_dir.as_os_str().is_empty()
    }

    /// Looks up the bundles of `ids` (64-hex container ids from cgroupfs, so safe in paths):
    /// per id, `Ok(None)` when no runtime has it, or the error of a bundle that cannot be read
    /// (as text: the discovery loop logs it once and compares it with the last one).
    pub fn lookup(&self, ids: &[String]) -> Vec<(String, Result<Option<BundleMeta>, String>)> {
        let namespaces = containerd::namespaces(&self.containerd_state_dir);
        ids.iter()
            .map(|id| {
                let found = match &namespaces {
                    Ok(namespaces) => self.find(namespaces, id).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (id.clone(), found)
            })
            .collect()
    }

    fn find(&self, namespaces: &[PathBuf], id: &str) -> Result<Option<BundleMeta>, BundleError> {
        if let Some(meta) = containerd::find(namespaces, id)? {
            return Ok(Some(meta));
        }
        crio::find(&self.crio_storage_dir, id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::fixtures::*;
    use super::*;
    use crate::containers::model::Runtime;

    #[test]
    fn bundles_are_found_in_every_namespace_and_in_crio_storage() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = bundle_tree(dir.path());
        let missing = "f".repeat(64);
        let ids: Vec<String> = [CTR_ID, MOBY_ID, NERD_ID, CRIO_ID, SANDBOX_ID, &missing]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let found: HashMap<String, Option<BundleMeta>> = dirs
            .lookup(&ids)
            .into_iter()
            .map(|(id, r)| (id, r.unwrap()))
            .collect();
        let summary = |id: &str| {
            found[id]
                .as_ref()
                .map(|m| (m.name.clone(), m.hostname.clone(), m.runtime))
        };
        assert_eq!(
            summary(CTR_ID),
            Some(("web".into(), "web-0".into(), Runtime::Containerd))
        );
        assert_eq!(
            summary(MOBY_ID),
            Some(("".into(), "d0cce7012345".into(), Runtime::Docker))
        );
        assert_eq!(
            summary(NERD_ID),
            Some(("redis".into(), "e7d000012345".into(), Runtime::Containerd))
        );
        assert_eq!(
            summary(CRIO_ID),
            Some(("api".into(), "".into(), Runtime::Crio))
        );
        assert_eq!(
            summary(SANDBOX_ID),
            Some(("".into(), "web-0".into(), Runtime::Containerd))
        );
        assert_eq!(found[&missing], None);

        // Runtimes that are not installed, or disabled, find nothing and fail nothing.
        for dirs in [
            BundleDirs {
                containerd_state_dir: dir.path().join("nope"),
                crio_storage_dir: dir.path().join("nope2"),
            },
            BundleDirs::default(),
        ] {
            assert!(dirs
                .lookup(&[CTR_ID.to_string()])
                .into_iter()
                .all(|(_, r)| r == Ok(None)));
        }
        assert!(BundleDirs::default().is_disabled());
        assert!(!dirs.is_disabled());
    }

    #[test]
    fn unreadable_bundles_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = bundle_tree(dir.path());
        let path = dirs
            .crio_storage_dir
            .join(CRIO_ID)
            .join("userdata/config.json");
        std::fs::write(&path, "{\"ociVersion\": \"1.1.0\", \"annot").unwrap();
        let ids = [CRIO_ID.to_string(), CTR_ID.to_string()];
        let results = dirs.lookup(&ids);
        let err = results[0].1.clone().unwrap_err();
        assert!(
            err.starts_with(&path.display().to_string())
                && err.contains("malformed OCI config.json"),
            "{err}"
        );
        // The other container is still found.
        assert_eq!(results[1].1.clone().unwrap().unwrap().name, "web");
        // A directory where config.json should be: a read error, not a panic.
        let bad = dirs
            .crio_storage_dir
            .join(CRIO_ID)
            .join("userdata/config.json");
        std::fs::remove_file(&bad).unwrap();
        std::fs::create_dir(&bad).unwrap();
        assert!(dirs.lookup(&ids)[0].1.is_err());
    }
}
