//! Flat keyed files (`<key> <integer>` per line: `/proc/vmstat`, `memory.stat`, `memory.events`,
//! `memory.oom_control`), key filters from config and metric-name sanitising. Shared with
//! `memory_events`.

use std::collections::HashSet;

/// One `<key> <value>` line. Values are kept as `f64` for exposition; kernels print them
/// unsigned, but a negative per-cpu drift may show up as a signed number on some versions.
pub fn parse_flat_keyed(text: &str) -> Result<Vec<(&str, f64)>, String> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), Some(raw), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!(
                "line {}: expected `<key> <value>`, got `{line}`",
                index + 1
            ));
        };
        let value = raw
            .parse::<u64>()
            .map(|v| v as f64)
            .or_else(|_| raw.parse::<i64>().map(|v| v as f64))
            .map_err(|_| {
                format!(
                    "line {}: value `{raw}` of `{key}` is not an integer",
                    index + 1
                )
            })?;
        out.push((key, value));
    }
    if out.is_empty() {
        return Err("no `<key> <value>` lines (empty or truncated file)".to_string());
    }
    Ok(out)
}

/// A key pattern from config: `key` (exact), `prefix*`, `*suffix`, `*part*`, or `*` (any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPattern {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
}

impl KeyPattern {
    pub fn parse(text: &str) -> Result<KeyPattern, String> {
        let leading = text.starts_with('*');
        let body = text.strip_prefix('*').unwrap_or(text);
        let trailing = body.ends_with('*');
        let body = body.strip_suffix('*').unwrap_or(body);
        if body.is_empty() {
            return if leading || trailing {
                Ok(KeyPattern::Any)
            } else {
                Err("empty pattern".to_string())
            };
        }
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!(
                "`{text}` is not a key pattern: use an exact key, `prefix*`, `*suffix` or \
                 `*part*` (regular expressions are not supported)"
            ));
        }
        let body = body.to_string();
        Ok(match (leading, trailing) {
            (false, false) => KeyPattern::Exact(body),
            (false, true) => KeyPattern::Prefix(body),
            (true, false) => KeyPattern::Suffix(body),
            (true, true) => KeyPattern::Contains(body),
        })
    }

    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeyPattern::Any => true,
            KeyPattern::Exact(k) => key == k,
            KeyPattern::Prefix(p) => key.starts_with(p.as_str()),
            KeyPattern::Suffix(s) => key.ends_with(s.as_str()),
            KeyPattern::Contains(c) => key.contains(c.as_str()),
        }
    }
}

/// Parses every pattern of config key `name`, naming the key and the pattern on error.
pub fn parse_patterns(name: &str, patterns: &[String]) -> Result<Vec<KeyPattern>, String> {
    patterns
        .iter()
        .map(|p| KeyPattern::parse(p).map_err(|e| format!("{name}: {e}")))
        .collect()
}

/// `included` (empty = every key) minus `excluded`; exclusion wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    included: Vec<KeyPattern>,
    excluded: Vec<KeyPattern>,
}

impl KeyFilter {
    pub fn new(included: Vec<KeyPattern>, excluded: Vec<KeyPattern>) -> Self {
        Self { included, excluded }
    }

    pub fn matches(&self, key: &str) -> bool {
        (self.included.is_empty() || self.included.iter().any(|p| p.matches(key)))
            && !self.excluded.iter().any(|p| p.matches(key))
    }
}

/// A file key as a metric-name part: anything outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Remembers which problems were logged so each is logged once, not every tick.
#[derive(Debug, Default)]
pub struct LoggedOnce {
    seen: HashSet<String>,
}

impl LoggedOnce {
    /// True the first time `key` is seen.
    pub fn first(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            return false;
        }
        // Bounded: a churning host must not grow this set without limit.
        if self.seen.len() >= 4096 {
            self.seen.clear();
        }
        self.seen.insert(key.to_string())
    }
}
