//! Stack addresses to frames on one dedicated thread (blazesym's `Symbolizer` is neither `Send`
//! nor `Sync`): user frames through blazesym's process source (ELF symbols of the binaries the
//! process maps, opened through `/proc/<pid>/map_files`, so container binaries resolve from the
//! host), kernel frames from `/proc/kallsyms` loaded once. Results are cached per (tgid, address)
//! in a bounded cache; an address that resolves to nothing becomes `[unknown]` with the module
//! it lies in, when /proc/<pid>/maps tells.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use blazesym::symbolize::source::{Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use crate::profiling::Frame;

use super::session::RawSample;

/// Resolved frames a cache holds before it starts over (and drops blazesym's open files).
pub const CACHE_CAPACITY: usize = 65_536;
pub const UNKNOWN: &str = "[unknown]";
/// blazesym's open binaries and symbol tables are dropped this often (our frame cache stays).
pub const SYMBOLIZER_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// Frames of each sample (leaf first: kernel, then user), in input order.
pub type SymbolizedStacks = Vec<Vec<Frame>>;
type Reply = Box<dyn FnOnce(SymbolizedStacks) + Send>;

struct Job {
    samples: Arc<Vec<RawSample>>,
    reply: Reply,
}

/// Handle of the symbolizer thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct SymbolizerThread {
    tx: mpsc::Sender<Job>,
    /// Addresses that resolved to no symbol (cumulative).
    pub misses: Arc<AtomicU64>,
}

impl SymbolizerThread {
    pub fn spawn(procfs_root: PathBuf) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let misses = Arc::new(AtomicU64::new(0));
        let counter = misses.clone();
        std::thread::Builder::new()
            .name("profile-symbolize".into())
            .spawn(move || {
                let mut state = SymbolizerState::new(procfs_root, counter);
                let mut fresh = std::time::Instant::now();
                while let Ok(job) = rx.recv() {
                    let stacks = job.samples.iter().map(|s| state.frames(s)).collect();
                    // blazesym keeps every binary it read mapped, with its parsed symbol
                    // tables, shared by every process of the same file: host-wide that grows
                    // with each compiler or runtime ever seen (tens of MB). Starting over
                    // bounds it to what one period touches; every window would re-parse the
                    // big ones each time (measured: +1 % of host CPU at 19 Hz).
                    if fresh.elapsed() >= SYMBOLIZER_REFRESH {
                        state.user = Symbolizer::new();
                        fresh = std::time::Instant::now();
                    }
                    (job.reply)(stacks);
                }
            })?;
        Ok(Self { tx, misses })
    }

    /// Symbolizes `samples` on the thread and calls `reply` there with the result.
    pub fn submit(
        &self,
        samples: Arc<Vec<RawSample>>,
        reply: impl FnOnce(SymbolizedStacks) + Send + 'static,
    ) -> Result<(), String> {
        self.tx
            .send(Job {
                samples,
                reply: Box::new(reply),
            })
            .map_err(|_| "the symbolizer thread has stopped".to_string())
    }
}

struct SymbolizerState {
    procfs_root: PathBuf,
    user: Symbolizer,
    kernel: Option<KernelSymbols>,
    cache: HashMap<(u32, u64), Frame>,
    misses: Arc<AtomicU64>,
}

impl SymbolizerState {
    fn new(procfs_root: PathBuf, misses: Arc<AtomicU64>) -> Self {
        Self {
            procfs_root,
            user: Symbolizer::new(),
            kernel: None,
            cache: HashMap::new(),
            misses,
        }
    }

    fn frames(&mut self, sample: &RawSample) -> Vec<Frame> {
        if self.cache.len() > CACHE_CAPACITY {
            // Starting over also bounds blazesym's own caches of opened binaries.
            self.cache.clear();
            self.user = Symbolizer::new();
        }
        let mut frames = Vec::with_capacity(sample.kernel.len() + sample.user.len());
        let kernel_missing: Vec<u64> = sample
            .kernel
            .iter()
            .copied()
            .filter(|a| !self.cache.contains_key(&(0, *a)))
            .collect();
        if !kernel_missing.is_empty() {
            let procfs_root = self.procfs_root.clone();
            let table = self
                .kernel
                .get_or_insert_with(|| KernelSymbols::load(&procfs_root.join("kallsyms")));
            for addr in kernel_missing {
                let frame = table.frame(addr);
                if frame.function == UNKNOWN {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                }
                self.cache.insert((0, addr), frame);
            }
        }
        frames.extend(
            sample
                .kernel
                .iter()
                .filter_map(|a| self.cache.get(&(0, *a)).cloned()),
        );
        if sample.tgid != 0 && !sample.user.is_empty() {
            self.resolve_user(sample.tgid, &sample.user);
            frames.extend(
                sample
                    .user
                    .iter()
                    .filter_map(|a| self.cache.get(&(sample.tgid, *a)).cloned()),
            );
        }
        frames
    }

    fn resolve_user(&mut self, tgid: u32, addrs: &[u64]) {
        // Only the leaf is the sampled instruction; the others are return addresses, one past
        // the call, which may already lie in the next function.
        let missing: Vec<(u64, u64)> = addrs
            .iter()
            .enumerate()
            .filter(|(_, a)| !self.cache.contains_key(&(tgid, **a)))
            .map(|(i, a)| (*a, if i == 0 { *a } else { a.saturating_sub(1) }))
            .collect();
        if missing.is_empty() {
            return;
        }
        let lookups: Vec<u64> = missing.iter().map(|(_, l)| *l).collect();
        let mut process = Process::new(tgid.into());
        process.perf_map = false;
        process.debug_syms = false;
        let source = Source::Process(process);
        let resolved: Vec<Option<(String, Option<String>)>> =
            match self.user.symbolize(&source, Input::AbsAddr(&lookups)) {
                Ok(symbols) => symbols
                    .into_iter()
                    .map(|s| match s {
                        Symbolized::Sym(sym) => Some((
                            sym.name.into_owned(),
                            sym.module.map(|m| m.to_string_lossy().into_owned()),
                        )),
                        Symbolized::Unknown(_) => None,
                    })
                    .collect(),
                // The process is gone (or its maps unreadable): all unknown.
                Err(_) => vec![None; lookups.len()],
            };
        let mut maps: Option<Vec<Mapping>> = None;
        for ((addr, _), found) in missing.into_iter().zip(resolved) {
            let frame = match found {
                Some((function, module)) => Frame {
                    function,
                    module,
                    kernel: false,
                    address: addr,
                },
                None => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    let maps = maps.get_or_insert_with(|| {
                        let path = self.procfs_root.join(format!("{tgid}/maps"));
                        parse_maps(&std::fs::read_to_string(path).unwrap_or_default())
                    });
                    Frame {
                        function: UNKNOWN.into(),
                        module: module_of(maps, addr),
                        kernel: false,
                        address: addr,
                    }
                }
            };
            self.cache.insert((tgid, addr), frame);
        }
    }
}

/// One mapping of /proc/<pid>/maps with a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub path: String,
}

/// The file-backed (or named, like `[vdso]`) mappings of a /proc/<pid>/maps text.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let path = fields.nth(4)?;
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                path: path.to_string(),
            })
        })
        .collect()
}

pub fn module_of(maps: &[Mapping], addr: u64) -> Option<String> {
    maps.iter()
        .find(|m| m.start <= addr && addr < m.end)
        .map(|m| m.path.clone())
}

/// Kernel text symbols from kallsyms, sorted by address.
pub struct KernelSymbols {
    symbols: Vec<(u64, String, Option<String>)>,
}

impl KernelSymbols {
    pub fn load(path: &std::path::Path) -> Self {
        Self::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// `addr type name [module]` lines; text symbols only; 0 addresses (kptr_restrict) dropped.
    pub fn parse(text: &str) -> Self {
        let mut symbols: Vec<(u64, String, Option<String>)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (addr, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
                if !matches!(kind, "t" | "T" | "w" | "W") {
                    return None;
                }
                let start = u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0)?;
                let module = fields
                    .next()
                    .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_string());
                Some((start, name.to_string(), module))
            })
            .collect();
        symbols.sort_by_key(|(start, _, _)| *start);
        Self { symbols }
    }

    /// The function containing `addr` (nearest symbol at or below); `[unknown]` below the first.
    pub fn frame(&self, addr: u64) -> Frame {
        let below = self.symbols.partition_point(|(start, _, _)| *start <= addr);
        match below.checked_sub(1).and_then(|i| self.symbols.get(i)) {
            Some((_, name, module)) => Frame {
                function: name.clone(),
                module: Some(module.clone().unwrap_or_else(|| "[kernel]".into())),
                kernel: true,
                address: addr,
            },
            None => Frame {
                function: UNKNOWN.into(),
                module: Some("[kernel]".into()),
                kernel: true,
                address: addr,
            },
        }
    }
}
