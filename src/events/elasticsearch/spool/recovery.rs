//! Opening a spool: the lock that keeps a second agent out, then what a previous run left
//! (segments, their read offsets, and a torn last line, which is cut off).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::cursor::{read_cursor, CURSOR};
use super::{io, Segment, Spool, SpoolError};

const LOCK: &str = "lock";

impl Spool {
    /// Opens (creating) the spool in `dir`, recovering what a previous run left: segments,
    /// read offsets, and a torn last line, which is cut off.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SpoolError::InUse {
                dir: dir.to_path_buf(),
            });
        }
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".ndjson"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            seqs.push(seq);
        }
        seqs.sort_unstable();
        let offsets = read_cursor(&dir.join(CURSOR));
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: VecDeque::new(),
            writer: None,
            bytes: 0,
            documents: 0,
            recovered_corrupt: 0,
            _lock: lock,
        };
        for seq in seqs {
            let path = spool.path(seq);
            let (len, docs_after, corrupt) = spool.recover_segment(&path, &offsets, seq)?;
            let start = offsets
                .iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, o)| (*o).min(len))
                .unwrap_or(0);
            spool.recovered_corrupt += corrupt;
            if start >= len {
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            spool.bytes += len - start;
            spool.documents += docs_after;
            spool.segments.push_back(Segment {
                seq,
                start,
                len,
                docs: docs_after,
            });
        }
        spool.save_cursor()?;
        Ok(spool)
    }

    /// Cuts a torn last line; returns (length, documents after the read offset, torn lines).
    fn recover_segment(
        &self,
        path: &Path,
        offsets: &[(u64, u64)],
        seq: u64,
    ) -> Result<(u64, u64, u64), SpoolError> {
        let mut data = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(io(path))?;
        let mut corrupt = 0;
        let complete = match data.iter().rposition(|b| *b == b'\n') {
            Some(last) => last + 1,
            None => 0,
        };
        if complete < data.len() {
            corrupt += 1;
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io(path))?;
            file.set_len(complete as u64).map_err(io(path))?;
            data.truncate(complete);
        }
        let start = offsets
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, o)| (*o as usize).min(data.len()))
            .unwrap_or(0);
        let docs = data[start..].iter().filter(|b| **b == b'\n').count() as u64;
        Ok((data.len() as u64, docs, corrupt))
    }
}
