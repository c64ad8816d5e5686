//! Kernel text addresses (drop locations, stack frames) resolved to `function+0xoff` from
//! `/proc/kallsyms`.

use std::collections::{HashMap, HashSet};

/// Kernel text addresses → `function+0xoff`, resolved from kallsyms and cached (drop locations
/// are a small set).
#[derive(Debug, Default)]
pub struct Symbolizer {
    cache: HashMap<u64, String>,
}

impl Symbolizer {
    /// Resolves every address of `addrs` not cached yet with one pass over `kallsyms`.
    pub fn resolve(&mut self, kallsyms: &std::path::Path, addrs: &[u64]) {
        let missing: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !self.cache.contains_key(a))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return;
        }
        let text = std::fs::read_to_string(kallsyms).unwrap_or_default();
        for (addr, name) in missing.iter().zip(nearest_symbols(&text, &missing)) {
            let resolved = match name {
                Some((start, name)) => format!("{name}+{:#x}", addr - start),
                None => format!("{addr:#x}"),
            };
            self.cache.insert(*addr, resolved);
        }
    }

    pub fn get(&self, addr: u64) -> String {
        self.cache
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| format!("{addr:#x}"))
    }

    /// A kernel stack as upstream's `stack`: one resolved frame a line, innermost first, without
    /// the frames of the tracepoint machinery and of this program above the drop.
    pub fn stack(&self, frames: &[u64]) -> String {
        let frames: Vec<String> = frames.iter().map(|a| self.get(*a)).collect();
        format_stack(&frames)
    }
}

/// Frames of the tracing machinery `bpf_get_stack` sees above the tracepoint's caller: the BPF
/// program itself, `bpf_trace_run<N>`, `__bpf_trace_<tp>` and `__traceiter_<tp>`.
fn is_tracing_frame(frame: &str) -> bool {
    [
        "bpf_prog_",
        "bpf_trace_run",
        "__bpf_trace_",
        "__traceiter_",
        "bpf_trampoline_",
    ]
    .iter()
    .any(|prefix| frame.starts_with(prefix))
}

/// Joins resolved frames (innermost first) with newlines, leaving out the leading tracing
/// frames; a stack of nothing but tracing frames is kept whole rather than emptied.
pub fn format_stack(frames: &[String]) -> String {
    let first = frames
        .iter()
        .position(|f| !is_tracing_frame(f))
        .unwrap_or(0);
    frames[first..].join("\n")
}

/// For each of `addrs`, the text symbol (start, name) at or below it in a kallsyms text.
pub fn nearest_symbols(kallsyms: &str, addrs: &[u64]) -> Vec<Option<(u64, String)>> {
    // Sorted once, then one binary search per address: a stack brings dozens of addresses.
    let mut symbols: Vec<(u64, &str)> = kallsyms
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (addr, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
            if !matches!(kind, "t" | "T" | "w" | "W") {
                return None;
            }
            let start = u64::from_str_radix(addr, 16).ok()?;
            (start != 0).then_some((start, name))
        })
        .collect();
    // Among symbols at one address the first listed wins, as a linear scan would pick.
    symbols.sort_by_key(|(start, _)| *start);
    addrs
        .iter()
        .map(|target| {
            let below = symbols.partition_point(|(start, _)| start <= target);
            let (start, _) = *symbols.get(below.checked_sub(1)?)?;
            let first = symbols.partition_point(|(s, _)| *s < start);
            symbols.get(first).map(|(s, n)| (*s, n.to_string()))
        })
        .collect()
}

/// Address of the text symbol `name` in a kallsyms text (the first listed when the name repeats,
/// as a static function can in several objects); `None` when absent or listed as 0 (kallsyms
/// hidden by kptr_restrict).
pub fn symbol_address(kallsyms: &str, name: &str) -> Option<u64> {
    kallsyms.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (addr, kind, symbol) = (fields.next()?, fields.next()?, fields.next()?);
        if symbol != name || !matches!(kind, "t" | "T") {
            return None;
        }
        u64::from_str_radix(addr, 16).ok().filter(|a| *a != 0)
    })
}
