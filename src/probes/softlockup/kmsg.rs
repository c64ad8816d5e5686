//! The kernel log as `/dev/kmsg` gives it (Documentation/ABI/testing/dev-kmsg): one record per
//! `read(2)`, `<prio>,<seq>,<usec>,<flags>[,...];<text>` with continuation lines (` KEY=value`)
//! after it; the kernel's soft lockup report among those records.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A kernel log line that is not what `/dev/kmsg` writes, or a soft lockup report whose fields
/// do not parse; counted, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsgError {
    #[error("kmsg record without the ';' that ends its prefix: {0:?}")]
    NoPrefix(String),
    #[error("kmsg record prefix {prefix:?}: {what}")]
    BadPrefix { prefix: String, what: &'static str },
    #[error("soft lockup report {text:?}: {what}")]
    BadReport { text: String, what: &'static str },
}

/// One record of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// syslog facility: 0 for the kernel's own messages; a write to /dev/kmsg from user space
    /// is `user` (1) unless it names another non-zero facility, so it never looks like the kernel.
    pub facility: u32,
    pub level: u32,
    pub seq: u64,
    /// Microseconds since boot (the kernel's log clock).
    pub usec: u64,
    /// The message with /dev/kmsg's `\xNN` escapes decoded.
    pub text: String,
}

impl KmsgRecord {
    /// Parses one record line (without its continuation lines and final newline).
    pub fn parse(line: &str) -> Result<Self, KmsgError> {
        let (prefix, text) = line
            .split_once(';')
            .ok_or_else(|| KmsgError::NoPrefix(truncated(line)))?;
        let bad = |what| KmsgError::BadPrefix {
            prefix: truncated(prefix),
            what,
        };
        let mut fields = prefix.split(',');
        let prio: u32 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("priority is not a number"))?;
        let seq: u64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("sequence number missing or not a number"))?;
        let usec: u64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("timestamp missing or not a number"))?;
        Ok(Self {
            facility: prio >> 3,
            level: prio & 7,
            seq,
            usec,
            text: unescape(text),
        })
    }
}

/// The kernel's soft lockup report (kernel/watchdog.c, `watchdog_timer_fn`):
/// `watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [stress-ng:1234]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftLockupReport {
    pub cpu: u32,
    pub stuck_secs: u64,
    pub comm: String,
    pub pid: u32,
}

const MARKER: &str = "BUG: soft lockup - CPU#";

impl SoftLockupReport {
    /// `None` for any other message; `Some(Err)` for a report whose fields are garbled.
    pub fn parse(text: &str) -> Option<Result<Self, KmsgError>> {
        let start = text.find(MARKER)?;
        let rest = &text[start + MARKER.len()..];
        let bad = |what| KmsgError::BadReport {
            text: truncated(text),
            what,
        };
        Some((|| {
            let (cpu, rest) = rest
                .split_once(" stuck for ")
                .ok_or_else(|| bad("no ' stuck for ' after the CPU number"))?;
            let cpu = cpu.parse().map_err(|_| bad("CPU number is not a number"))?;
            let (secs, rest) = rest
                .split_once("s!")
                .ok_or_else(|| bad("no 's!' after the stuck duration"))?;
            let stuck_secs = secs
                .parse()
                .map_err(|_| bad("stuck duration is not a number of seconds"))?;
            // `[comm:pid]`: comm may itself hold ':' or ']', the pid is after the last ':'.
            let task = rest
                .trim()
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .ok_or_else(|| bad("no [comm:pid] after the duration"))?;
            let (comm, pid) = task
                .rsplit_once(':')
                .ok_or_else(|| bad("no ':' between comm and pid"))?;
            let pid = pid.parse().map_err(|_| bad("pid is not a number"))?;
            Ok(Self {
                cpu,
                stuck_secs,
                comm: comm.to_string(),
                pid,
            })
        })())
    }
}

/// Decodes /dev/kmsg's `\xNN` escapes (it escapes non-printable bytes and `\` itself).
pub fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn truncated(text: &str) -> String {
    text.chars().take(120).collect()
}

/// What one drain of the log gave.
#[derive(Debug, Default)]
pub struct Drained {
    pub records: Vec<Result<KmsgRecord, KmsgError>>,
    /// Times the kernel overwrote records before we read them (`EPIPE`).
    pub overruns: u64,
}

/// Tails the kernel log from the moment it is opened: only records written after
/// [`KmsgReader::open`] are read, never the log of the past (an old soft lockup is not a new
/// one). Works on `/dev/kmsg` (a record per read, `EAGAIN` when none is left) and on a regular
/// file of such lines (tests), where a read returns many lines and end of file means none left.
pub struct KmsgReader {
    file: File,
    /// Bytes of a line not yet ended by '\n' (regular files only).
    partial: Vec<u8>,
}

/// Larger than the kernel's longest record (1 KiB text plus prefix and dictionary).
const READ_BUFFER: usize = 16 * 1024;

impl KmsgReader {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            partial: Vec::new(),
        })
    }

    /// Reads the records written since the last call, at most `max` of them.
    pub fn drain(&mut self, max: usize) -> std::io::Result<Drained> {
        let mut drained = Drained::default();
        let mut buf = vec![0u8; READ_BUFFER];
        while drained.records.len() < max {
            let n = match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The ring overwrote records we had not read; the next read continues after them.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    drained.overruns += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.partial.extend_from_slice(&buf[..n]);
            while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]);
                // Continuation lines (` SUBSYSTEM=…`, ` DEVICE=…`) belong to the record above.
                if line.is_empty() || line.starts_with(' ') {
                    continue;
                }
                drained.records.push(KmsgRecord::parse(&line));
            }
        }
        Ok(drained)
    }
}
