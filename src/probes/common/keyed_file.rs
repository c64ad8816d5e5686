//! Flat keyed files, one `<key> <integer>` per line: `/proc/vmstat`, `memory.stat`,
//! `memory.events`, `memory.oom_control`, `cpu.stat`, `cpuacct.stat`.

/// A value type of a keyed file.
pub trait KeyedValue: Sized {
    /// What a value must be, for errors (`an integer`).
    const WHAT: &'static str;
    fn parse(raw: &str) -> Option<Self>;
}

/// Counters that must not be negative (`cpu.stat`, `cpuacct.stat`).
impl KeyedValue for u64 {
    const WHAT: &'static str = "an unsigned integer";
    fn parse(raw: &str) -> Option<Self> {
        raw.parse().ok()
    }
}

/// Values for exposition. Kernels print them unsigned, but a negative per-cpu drift may show up
/// as a signed number on some versions.
impl KeyedValue for f64 {
    const WHAT: &'static str = "an integer";
    fn parse(raw: &str) -> Option<Self> {
        raw.parse::<u64>()
            .map(|v| v as f64)
            .or_else(|_| raw.parse::<i64>().map(|v| v as f64))
            .ok()
    }
}

/// `<key> <value>` lines, in file order. Every line must be a key and a value, so a truncated
/// last line is reported rather than half-read; blank lines are skipped.
pub fn parse_flat_keyed<V: KeyedValue>(text: &str) -> Result<Vec<(&str, V)>, String> {
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
        let value = V::parse(raw).ok_or_else(|| {
            format!(
                "line {}: value `{raw}` of `{key}` is not {}",
                index + 1,
                V::WHAT
            )
        })?;
        out.push((key, value));
    }
    if out.is_empty() {
        return Err("no `<key> <value>` lines (empty or truncated file)".to_string());
    }
    Ok(out)
}

/// Value of `key` in parsed pairs.
pub fn field<V: Copy>(pairs: &[(&str, V)], key: &str) -> Option<V> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Value of `key`, or an error naming it.
pub fn require<V: Copy>(pairs: &[(&str, V)], key: &str) -> Result<V, String> {
    field(pairs, key).ok_or_else(|| format!("missing {key}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flat_keyed_lines() {
        let entries = parse_flat_keyed("nr_free_pages 2232775\nallocstall_normal 0\n\n").unwrap();
        assert_eq!(
            entries,
            vec![("nr_free_pages", 2232775.0), ("allocstall_normal", 0.0)]
        );
        assert_eq!(parse_flat_keyed("x -3\n").unwrap(), vec![("x", -3.0)]);
        assert_eq!(
            parse_flat_keyed::<f64>("hierarchical_memory_limit 9223372036854771712\n").unwrap()[0]
                .1,
            9223372036854771712.0
        );
        assert_eq!(
            parse_flat_keyed("user 156\nsystem 0\n"),
            Ok(vec![("user", 156u64), ("system", 0)])
        );
    }

    #[test]
    fn malformed_flat_keyed_names_line_and_problem() {
        assert_eq!(
            parse_flat_keyed::<f64>("a 1\nnr_free_pa\n").unwrap_err(),
            "line 2: expected `<key> <value>`, got `nr_free_pa`"
        );
        assert_eq!(
            parse_flat_keyed::<u64>("nr_periods 32\nnr_thr").unwrap_err(),
            "line 2: expected `<key> <value>`, got `nr_thr`"
        );
        assert_eq!(
            parse_flat_keyed::<f64>("a 1\nb x7\n").unwrap_err(),
            "line 2: value `x7` of `b` is not an integer"
        );
        assert_eq!(
            parse_flat_keyed::<u64>("user -3\n").unwrap_err(),
            "line 1: value `-3` of `user` is not an unsigned integer"
        );
        assert!(parse_flat_keyed::<f64>("a 1 2\n").is_err());
        assert!(parse_flat_keyed::<u64>("")
            .unwrap_err()
            .contains("empty or truncated"));
        assert!(parse_flat_keyed::<f64>("\u{0}\u{1}garbage").is_err());
    }

    #[test]
    fn looks_up_keys() {
        let pairs = parse_flat_keyed::<u64>("user 1\nsystem 2\n").unwrap();
        assert_eq!(field(&pairs, "system"), Some(2));
        assert_eq!(field(&pairs, "idle"), None);
        assert_eq!(require(&pairs, "idle").unwrap_err(), "missing idle");
    }

    #[test]
    fn sanitizes_keys_for_metric_names() {
        assert_eq!(sanitize_key("nr_free_pages"), "nr_free_pages");
        assert_eq!(sanitize_key("weird-key.v2"), "weird_key_v2");
    }
}
