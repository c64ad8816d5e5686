//! Reading one procfs/cgroupfs file, with errors that name the probe and the path.

use std::io::ErrorKind;
use std::path::Path;

use crate::core::probe::ProbeError;

/// Reads a whole file; the error names the probe and the path.
pub fn read(probe: &'static str, path: &Path) -> Result<String, ProbeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        // Text files of procfs/sysfs are ASCII: bytes that are not UTF-8 are a malformed file.
        Err(source) if source.kind() == std::io::ErrorKind::InvalidData => Err(malformed(
            probe,
            path,
            "not text (invalid UTF-8)".to_string(),
        )),
        Err(source) => Err(ProbeError::Read {
            probe,
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Reads and parses a whole file; a parse error names the probe, the path and the reason.
pub fn read_parsed<T>(
    probe: &'static str,
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ProbeError> {
    let text = read(probe, path)?;
    parse(&text).map_err(|reason| malformed(probe, path, reason))
}

/// Reads a file that may legitimately be absent (`Ok(None)`).
pub fn read_optional(probe: &'static str, path: &Path) -> Result<Option<String>, ProbeError> {
    match read(probe, path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A parse error of `path` for `probe`.
pub fn malformed(probe: &'static str, path: &Path, reason: String) -> ProbeError {
    ProbeError::Parse {
        probe,
        path: path.display().to_string(),
        reason,
    }
}

/// True when a read failed because the file is gone (e.g. its container just stopped).
pub fn is_not_found(error: &ProbeError) -> bool {
    matches!(error, ProbeError::Read { source, .. } if source.kind() == ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_probe_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = read("demo", &missing).unwrap_err();
        assert!(is_not_found(&err));
        assert!(
            err.to_string().starts_with("demo: cannot read ")
                && err.to_string().contains("missing"),
            "{err}"
        );
        assert!(read_optional("demo", &missing).unwrap().is_none());
        // A directory is not a missing file: its error is kept.
        let err = read_optional("demo", dir.path()).unwrap_err();
        assert!(!is_not_found(&err), "{err}");
        let file = dir.path().join("file");
        std::fs::write(&file, "text").unwrap();
        assert_eq!(
            read_optional("demo", &file).unwrap().as_deref(),
            Some("text")
        );
        assert_eq!(read_parsed("demo", &file, |t| Ok(t.len())).unwrap(), 4);
        let err = read_parsed("demo", &file, |_| Err::<(), _>("bad".into())).unwrap_err();
        assert!(err.to_string().starts_with("demo: malformed "), "{err}");
        let err = malformed("demo", &file, "bad".into());
        assert!(!is_not_found(&err));
        assert!(err.to_string().ends_with("/file: bad"), "{err}");
    }
}
