//! The `cursor` file: the read offset of each segment, so a restart replays from the first
//! unacknowledged document.

use std::path::Path;

use super::{io, Spool, SpoolError};

pub(super) const CURSOR: &str = "cursor";

impl Spool {
    /// Writes the read offsets (temporary file, then rename, so a crash leaves the old or new).
    pub(super) fn save_cursor(&self) -> Result<(), SpoolError> {
        let text: String = self
            .segments
            .iter()
            .filter(|s| s.start > 0)
            .map(|s| format!("{} {}\n", s.seq, s.start))
            .collect();
        let path = self.dir.join(CURSOR);
        let tmp = self.dir.join(format!("{CURSOR}.tmp"));
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// `seq offset` lines; anything unreadable counts as offset 0 (a resend, never a loss).
pub(super) fn read_cursor(path: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (seq, offset) = line.split_once(' ')?;
            Some((seq.trim().parse().ok()?, offset.trim().parse().ok()?))
        })
        .collect()
}
