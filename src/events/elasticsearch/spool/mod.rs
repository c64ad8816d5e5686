//! The on-disk spool: documents waiting for the cluster, oldest first, in NDJSON segment files
//! (`<seq>.ndjson`, one document per line) in `spool_dir`. New documents are appended to the last
//! segment; documents to send again before everything else (a batch that failed while the spool
//! was empty, the 429/5xx items of a bulk) go into a new segment in front. Reads never consume:
//! a batch is `peek`ed, sent, then `commit`ted, and the read offsets are kept in a `cursor` file,
//! so a restart replays from the first unacknowledged document. A crash can resend a batch
//! whose answer was lost; the `_id` keeps it one document. The spool is capped in bytes; what
//! would go past the cap is refused (counted by the caller), so probes never wait.

mod cursor;
mod recovery;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::bulk::BulkDoc;

/// A segment is closed and a new one started past this size.
const SEGMENT_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Sequence number of the first segment of an empty spool; segments put in front count down.
const FIRST_SEQ: u64 = 1 << 40;

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
}

#[cfg(test)]
mod tests;
