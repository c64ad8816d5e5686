//! The on-disk spool: documents waiting for the cluster, oldest first, in NDJSON segment files
//! (`<seq>.ndjson`, one document per line) in `spool_dir`. New documents are appended to the last
//! segment; documents to send again before everything else (a batch that failed while the spool
//! was empty, the 429/5xx items of a bulk) go into a new segment in front. Reads never consume:
//! a batch is `peek`ed, sent, then `commit`ted, and the read offsets are kept in a `cursor` file,
//! so a restart replays from the first unacknowledged document. A crash can resend a batch
//! whose answer was lost; the `_id` keeps it one document. The spool is capped in bytes; what
//! would go past the cap is refused (counted by the caller), so probes never wait.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::bulk::BulkDoc;

/// A segment is closed and a new one started past this size.
const SEGMENT_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Sequence number of the first segment of an empty spool; segments put in front count down.
const FIRST_SEQ: u64 = 1 << 40;
const CURSOR: &str = "cursor";
const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spool directory {dir} is in use by another process")]
    InUse { dir: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Bytes already sent and acknowledged (the read offset).
    start: u64,
    /// Bytes written.
    len: u64,
    /// Documents not yet acknowledged.
    docs: u64,
}

/// A batch read from the head of the spool; `commit` it once the cluster has it.
#[derive(Debug)]
pub struct Peeked {
    pub docs: Vec<BulkDoc>,
    /// Lines that were not documents (a torn write, a foreign file); skipped by `commit`.
    pub corrupt: u64,
    seq: u64,
    end: u64,
    lines: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub written: u64,
    /// Refused: the spool is at `spool_max_mib`.
    pub dropped: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    /// The last segment, open for appending.
    writer: Option<(u64, BufWriter<File>)>,
    bytes: u64,
    documents: u64,
    /// Lines found torn or unreadable while opening (lost to a crash).
    pub recovered_corrupt: u64,
    _lock: File,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.ndjson")
}

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

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_name(seq))
    }

    pub fn is_empty(&self) -> bool {
        self.documents == 0
    }

    /// Documents waiting.
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// Bytes waiting (what `spool_max_mib` caps).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends documents after everything already spooled; refuses those past the cap.
    pub fn append(&mut self, docs: &[BulkDoc]) -> Result<AppendOutcome, SpoolError> {
        let mut outcome = AppendOutcome::default();
        for doc in docs {
            let size = doc.source.len() as u64 + 1;
            if self.bytes + size > self.max_bytes {
                outcome.dropped += 1;
                continue;
            }
            let rotate = self
                .segments
                .back()
                .is_none_or(|s| s.len >= SEGMENT_MAX_BYTES);
            if rotate || self.writer.is_none() {
                self.open_tail(rotate)?;
            }
            let Some((seq, writer)) = self.writer.as_mut() else {
                continue;
            };
            let path = self.dir.join(segment_name(*seq));
            writer
                .write_all(doc.source.as_bytes())
                .and_then(|_| writer.write_all(b"\n"))
                .map_err(io(&path))?;
            if let Some(tail) = self.segments.back_mut() {
                tail.len += size;
                tail.docs += 1;
            }
            self.bytes += size;
            self.documents += 1;
            outcome.written += 1;
        }
        self.flush()?;
        Ok(outcome)
    }

    /// Makes the last segment writable: a new one when `new` (or none exists), else the existing
    /// last one reopened for appending.
    fn open_tail(&mut self, new: bool) -> Result<(), SpoolError> {
        self.close_writer()?;
        let seq = match self.segments.back() {
            Some(last) if !new => last.seq,
            Some(last) => last.seq + 1,
            None => FIRST_SEQ,
        };
        let path = self.path(seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        if self.segments.back().is_none_or(|s| s.seq != seq) {
            self.segments.push_back(Segment {
                seq,
                start: 0,
                len: 0,
                docs: 0,
            });
        }
        self.writer = Some((seq, BufWriter::new(file)));
        Ok(())
    }

    fn close_writer(&mut self) -> Result<(), SpoolError> {
        if let Some((seq, mut writer)) = self.writer.take() {
            let path = self.path(seq);
            writer.flush().map_err(io(&path))?;
            writer.get_ref().sync_data().map_err(io(&path))?;
        }
        Ok(())
    }

    /// Hands what was appended to the kernel (it survives the agent; `sync` for the disk).
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        if let Some((seq, writer)) = self.writer.as_mut() {
            let path = self.dir.join(segment_name(*seq));
            writer.flush().map_err(io(&path))?;
        }
        Ok(())
    }

    /// Flushes and fsyncs the open segment (at shutdown).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.close_writer()
    }

    /// Puts documents before everything spooled: they are sent next. Not capped, so a batch the
    /// cluster refused for now is never lost (it is at most one batch past the cap).
    pub fn push_front(&mut self, docs: &[BulkDoc]) -> Result<(), SpoolError> {
        if docs.is_empty() {
            return Ok(());
        }
        let seq = match self.segments.front() {
            Some(first) => first.seq.checked_sub(1).ok_or_else(|| SpoolError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("segment sequence exhausted"),
            })?,
            None => FIRST_SEQ,
        };
        let path = self.path(seq);
        let mut data = Vec::new();
        for doc in docs {
            data.extend_from_slice(doc.source.as_bytes());
            data.push(b'\n');
        }
        let mut file = File::create(&path).map_err(io(&path))?;
        file.write_all(&data)
            .and_then(|_| file.sync_data())
            .map_err(io(&path))?;
        let len = data.len() as u64;
        self.segments.push_front(Segment {
            seq,
            start: 0,
            len,
            docs: docs.len() as u64,
        });
        self.bytes += len;
        self.documents += docs.len() as u64;
        Ok(())
    }

    /// Reads up to `max_docs` documents from the head without consuming them.
    pub fn peek(&mut self, max_docs: usize) -> Result<Peeked, SpoolError> {
        self.flush()?;
        let Some(head) = self.segments.front() else {
            return Ok(Peeked {
                docs: Vec::new(),
                corrupt: 0,
                seq: 0,
                end: 0,
                lines: 0,
            });
        };
        let (seq, start, len) = (head.seq, head.start, head.len);
        let path = self.path(seq);
        let mut file = File::open(&path).map_err(io(&path))?;
        file.seek(SeekFrom::Start(start)).map_err(io(&path))?;
        let mut reader = BufReader::new(file.take(len - start));
        let mut peeked = Peeked {
            docs: Vec::new(),
            corrupt: 0,
            seq,
            end: start,
            lines: 0,
        };
        let mut raw = Vec::new();
        while peeked.docs.len() < max_docs {
            raw.clear();
            let read = reader.read_until(b'\n', &mut raw).map_err(io(&path))?;
            if read == 0 {
                break;
            }
            peeked.end += read as u64;
            peeked.lines += 1;
            match std::str::from_utf8(&raw).ok().map(BulkDoc::from_line) {
                Some(Ok(doc)) => peeked.docs.push(doc),
                _ => peeked.corrupt += 1,
            }
        }
        Ok(peeked)
    }

    /// Marks a peeked batch as delivered; a segment read to its end is deleted.
    pub fn commit(&mut self, peeked: &Peeked) -> Result<(), SpoolError> {
        let Some(index) = self.segments.iter().position(|s| s.seq == peeked.seq) else {
            return Ok(());
        };
        let segment = &mut self.segments[index];
        let advanced = peeked.end.saturating_sub(segment.start);
        segment.start = segment.start.max(peeked.end);
        segment.docs = segment.docs.saturating_sub(peeked.lines);
        self.bytes = self.bytes.saturating_sub(advanced);
        self.documents = self.documents.saturating_sub(peeked.lines);
        if segment.start >= segment.len {
            let seq = segment.seq;
            if self.writer.as_ref().is_some_and(|(s, _)| *s == seq) {
                self.writer = None;
            }
            self.segments.remove(index);
            let path = self.path(seq);
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        self.save_cursor()
    }

    /// Writes the read offsets (temporary file, then rename, so a crash leaves the old or new).
    fn save_cursor(&self) -> Result<(), SpoolError> {
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
fn read_cursor(path: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (seq, offset) = line.split_once(' ')?;
            Some((seq.trim().parse().ok()?, offset.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u64) -> BulkDoc {
        let id = format!("{n:032x}");
        BulkDoc {
            // Same length for every n, so the cap test can count in documents.
            source: format!("{{\"tracer_id\":\"{id}\",\"n\":\"{n:04}\"}}"),
            id,
        }
    }

    fn docs(range: std::ops::Range<u64>) -> Vec<BulkDoc> {
        range.map(doc).collect()
    }

    /// Peeks and commits batches of `n` until empty; returns the ids in the order read.
    fn drain(spool: &mut Spool, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let peeked = spool.peek(n).unwrap();
            if peeked.lines == 0 {
                return ids;
            }
            ids.extend(peeked.docs.iter().map(|d| d.id.clone()));
            spool.commit(&peeked).unwrap();
        }
    }

    fn ids(range: std::ops::Range<u64>) -> Vec<String> {
        docs(range).into_iter().map(|d| d.id).collect()
    }

    #[test]
    fn documents_come_back_in_order_and_front_pushes_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.is_empty());
        spool.append(&docs(10..20)).unwrap();
        spool.push_front(&docs(5..10)).unwrap();
        spool.append(&docs(20..25)).unwrap();
        assert_eq!(spool.documents(), 20);
        let first = spool.peek(3).unwrap();
        assert_eq!(first.docs, docs(5..8));
        // Not committed: the same batch again.
        assert_eq!(spool.peek(3).unwrap().docs, docs(5..8));
        spool.commit(&first).unwrap();
        // The 429 items of a batch go back in front of what is left.
        spool.push_front(&docs(6..7)).unwrap();
        let mut expected = ids(6..7);
        expected.extend(ids(8..25));
        assert_eq!(drain(&mut spool, 4), expected);
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
            .collect();
        assert!(files.is_empty(), "delivered segments are deleted");
    }

    #[test]
    fn the_cap_refuses_new_documents_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let size = doc(0).source.len() as u64 + 1;
        let mut spool = Spool::open(dir.path(), size * 10).unwrap();
        let outcome = spool.append(&docs(0..15)).unwrap();
        assert_eq!(
            outcome,
            AppendOutcome {
                written: 10,
                dropped: 5
            }
        );
        assert_eq!(spool.bytes(), size * 10);
        // Delivering some makes room again.
        let peeked = spool.peek(4).unwrap();
        spool.commit(&peeked).unwrap();
        assert_eq!(spool.append(&docs(15..20)).unwrap().written, 4);
        let mut expected = ids(4..10);
        expected.extend(ids(15..19));
        assert_eq!(drain(&mut spool, 100), expected);
    }

    #[test]
    fn a_reopened_spool_resumes_after_the_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
            spool.append(&docs(0..10)).unwrap();
            let peeked = spool.peek(3).unwrap();
            spool.commit(&peeked).unwrap();
            spool.push_front(&docs(100..102)).unwrap();
            // Peeked but not committed when the agent stops: sent again after the restart.
            let _ = spool.peek(5).unwrap();
            assert!(matches!(
                Spool::open(dir.path(), 1 << 20),
                Err(SpoolError::InUse { .. })
            ));
            spool.sync().unwrap();
        }
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.documents(), 9);
        let mut expected = ids(100..102);
        expected.extend(ids(3..10));
        assert_eq!(drain(&mut spool, 2), expected);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_garbage_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
            spool.append(&docs(0..3)).unwrap();
            spool.sync().unwrap();
        }
        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "ndjson"))
            .unwrap();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(b"not json\n\xff\xfe\n{\"tracer_id\":\"torn")
            .unwrap();
        drop(file);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.recovered_corrupt, 1, "the torn line");
        assert_eq!(spool.documents(), 5, "lines, garbage included");
        let peeked = spool.peek(10).unwrap();
        assert_eq!(peeked.docs, docs(0..3));
        assert_eq!(peeked.corrupt, 2);
        spool.commit(&peeked).unwrap();
        assert!(spool.is_empty());
        // Appending after recovery starts on a clean line.
        spool.append(&docs(3..4)).unwrap();
        assert_eq!(drain(&mut spool, 10), ids(3..4));
    }

    #[test]
    fn segments_rotate_and_are_read_across() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 64 << 20).unwrap();
        let big = BulkDoc {
            id: "big".into(),
            source: format!(
                "{{\"tracer_id\":\"big\",\"pad\":\"{}\"}}",
                "x".repeat(1 << 20)
            ),
        };
        let batch: Vec<BulkDoc> = std::iter::repeat_n(big, 10).collect();
        spool.append(&batch).unwrap();
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
            .count();
        assert!(segments >= 2, "{segments} segments");
        assert_eq!(drain(&mut spool, 3).len(), 10);
    }
}
