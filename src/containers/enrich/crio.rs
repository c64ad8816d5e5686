//! CRI-O's OCI bundles: `<storage dir>/<id>/userdata/config.json`.

use std::path::Path;

use super::oci::{read_bundle, BundleError, BundleMeta};
use crate::containers::model::Runtime;

/// The bundle of container `id`; none when CRI-O is not configured or does not know it.
pub(super) fn find(storage_dir: &Path, id: &str) -> Result<Option<BundleMeta>, BundleError> {
    if storage_dir.as_os_str().is_empty() {
        return Ok(None);
    }
    let path = storage_dir.join(id).join("userdata/config.json");
    Ok(read_bundle(&path)?.map(|meta| BundleMeta {
        runtime: Runtime::Crio,
        ..meta
    }))
}
