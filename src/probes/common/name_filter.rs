//! Include/exclude lists of names from config (devices, `Proto_Field` keys, vmstat keys), checked
//! when the config is loaded. A list accepts one of two pattern syntaxes ([`Syntax`]); errors
//! name the config key and the pattern.

use crate::core::probe::ProbeError;

/// Which patterns a config list accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// An exact name or a prefix ending in `*` (`docker*`). Names never contain whitespace.
    /// In either syntax, `re:<regex>` is an unanchored regular expression.
    Prefix,
    /// An exact key, `prefix*`, `*suffix`, `*part*` or `*` (any); keys are `[A-Za-z0-9_.-]`,
    /// which also rejects regular expressions.
    Wildcard,
}

/// A `re:<regex>` entry (unanchored, as upstream's Go regexps are matched).
#[derive(Debug, Clone)]
struct Regex(regex::Regex);

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Regex {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Regex(Regex),
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
}

impl Pattern {
    /// Parses one entry of config list `key`; the error names the key.
    fn parse(syntax: Syntax, key: &str, raw: &str) -> Result<Pattern, String> {
        if raw.is_empty() {
            return Err(format!("{key}: empty pattern"));
        }
        // Upstream configs use regular expressions; `re:` keeps them usable in either syntax.
        if let Some(expression) = raw.strip_prefix("re:") {
            return regex::Regex::new(expression)
                .map(|r| Pattern::Regex(Regex(r)))
                .map_err(|e| format!("{key}: `{raw}` is not a valid regular expression: {e}"));
        }
        match syntax {
            Syntax::Prefix => Self::parse_prefix(raw),
            Syntax::Wildcard => Self::parse_wildcard(raw),
        }
        .map_err(|reason| format!("{key}: {reason}"))
    }

    fn parse_prefix(raw: &str) -> Result<Pattern, String> {
        let (body, prefix) = match raw.strip_suffix('*') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        if body.contains('*') {
            return Err(format!(
                "pattern `{raw}`: `*` is only allowed at the end (exact name or prefix*)"
            ));
        }
        if body.is_empty() {
            return Err(format!(
                "pattern `{raw}`: a prefix needs a character before `*` (exact name or prefix*)"
            ));
        }
        if body.chars().any(char::is_whitespace) {
            return Err(format!(
                "pattern `{raw}`: names contain no whitespace (exact name or prefix*)"
            ));
        }
        let body = body.to_string();
        Ok(if prefix {
            Pattern::Prefix(body)
        } else {
            Pattern::Exact(body)
        })
    }

    fn parse_wildcard(raw: &str) -> Result<Pattern, String> {
        let leading = raw.starts_with('*');
        let body = raw.strip_prefix('*').unwrap_or(raw);
        let trailing = body.ends_with('*');
        let body = body.strip_suffix('*').unwrap_or(body);
        if body.is_empty() {
            return Ok(Pattern::Any);
        }
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!(
                "`{raw}` is not a key pattern: use an exact key, `prefix*`, `*suffix` or \
                 `*part*`, or `re:<regex>` for a regular expression"
            ));
        }
        let body = body.to_string();
        Ok(match (leading, trailing) {
            (false, false) => Pattern::Exact(body),
            (false, true) => Pattern::Prefix(body),
            (true, false) => Pattern::Suffix(body),
            (true, true) => Pattern::Contains(body),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Regex(regex) => regex.0.is_match(name),
            Pattern::Exact(exact) => name == exact,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => name.ends_with(suffix.as_str()),
            Pattern::Contains(part) => name.contains(part.as_str()),
        }
    }
}

/// A name passes when the include list is empty or matches it, and the exclude list does not
/// (exclusion wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    syntax: Syntax,
    included: Vec<Pattern>,
    excluded: Vec<Pattern>,
}

impl NameFilter {
    /// A filter that passes every name, until lists are added.
    pub fn new(syntax: Syntax) -> Self {
        Self {
            syntax,
            included: Vec::new(),
            excluded: Vec::new(),
        }
    }

    /// Adds config list `key` of names to export (an empty list keeps every name).
    pub fn include(mut self, key: &str, patterns: &[String]) -> Result<Self, String> {
        let parsed = self.parse_all(key, patterns)?;
        self.included.extend(parsed);
        Ok(self)
    }

    /// Adds config list `key` of names never exported.
    pub fn exclude(mut self, key: &str, patterns: &[String]) -> Result<Self, String> {
        let parsed = self.parse_all(key, patterns)?;
        self.excluded.extend(parsed);
        Ok(self)
    }

    fn parse_all(&self, key: &str, patterns: &[String]) -> Result<Vec<Pattern>, String> {
        patterns
            .iter()
            .map(|raw| Pattern::parse(self.syntax, key, raw))
            .collect()
    }

    pub fn matches(&self, name: &str) -> bool {
        (self.included.is_empty() || self.included.iter().any(|p| p.matches(name)))
            && !self.excluded.iter().any(|p| p.matches(name))
    }
}

/// Maps a list error met when the probe starts (the config check reports it at load time) to
/// `<probe>: malformed config [probes.<probe>]: <reason>`.
pub fn invalid_config(probe: &'static str) -> impl FnOnce(String) -> ProbeError {
    move |reason| ProbeError::Parse {
        probe,
        path: format!("config [probes.{probe}]"),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> Vec<String> {
        patterns.iter().map(|p| p.to_string()).collect()
    }

    fn including(syntax: Syntax, patterns: &[&str]) -> NameFilter {
        NameFilter::new(syntax)
            .include("included", &list(patterns))
            .unwrap()
    }

    fn excluding(syntax: Syntax, patterns: &[&str]) -> NameFilter {
        NameFilter::new(syntax)
            .exclude("excluded", &list(patterns))
            .unwrap()
    }

    #[test]
    fn upstream_style_regexes_work_in_both_syntaxes() {
        for syntax in [Syntax::Prefix, Syntax::Wildcard] {
            let filter = including(syntax, &["re:^(allocstall|nr_dirty)", "nr_free_pages"]);
            assert!(filter.matches("allocstall_normal"));
            assert!(
                filter.matches("nr_dirty_threshold"),
                "unanchored end, as upstream"
            );
            assert!(filter.matches("nr_free_pages"));
            assert!(!filter.matches("pgfault"));
            let filter = excluding(syntax, &["re:^(lo|veth.*)$"]);
            assert!(!filter.matches("veth12"));
            assert!(filter.matches("eth0"));
        }
        let err = NameFilter::new(Syntax::Wildcard)
            .include("host_included", &list(&["re:(unclosed"]))
            .unwrap_err();
        assert!(
            err.contains("host_included") && err.contains("not a valid regular expression"),
            "{err}"
        );
    }

    fn error(syntax: Syntax, pattern: &str) -> String {
        NameFilter::new(syntax)
            .exclude("device_excluded", &list(&[pattern]))
            .unwrap_err()
    }

    #[test]
    fn prefix_syntax_matches_exact_names_and_prefixes() {
        let f = excluding(Syntax::Prefix, &["ram*", "vda"]);
        assert!(!f.matches("ram12"));
        assert!(f.matches("zram0"));
        assert!(f.matches("vda1"));
        assert!(!f.matches("vda"));
        let f = including(Syntax::Prefix, &["ifb*", "lo"]);
        assert!(f.matches("ifb0") && f.matches("lo"));
        assert!(!f.matches("eth0") && !f.matches("lo0"));
    }

    #[test]
    fn prefix_syntax_rejects_what_never_matches_a_name() {
        assert_eq!(error(Syntax::Prefix, ""), "device_excluded: empty pattern");
        for bad in ["et*h", "*eth", "**"] {
            let err = error(Syntax::Prefix, bad);
            assert!(
                err.starts_with(&format!("device_excluded: pattern `{bad}`: `*` is only")),
                "{err}"
            );
        }
        for bad in ["*", "sd a", "eth0 "] {
            let err = error(Syntax::Prefix, bad);
            assert!(
                err.starts_with(&format!("device_excluded: pattern `{bad}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn wildcard_syntax_key_patterns() {
        let p = |s: &str| including(Syntax::Wildcard, &[s]);
        assert!(p("allocstall*").matches("allocstall_normal"));
        assert!(!p("allocstall*").matches("nr_allocstall"));
        assert!(p("nr_dirty").matches("nr_dirty"));
        assert!(!p("nr_dirty").matches("nr_dirty_threshold"));
        assert!(p("*_anon").matches("inactive_anon"));
        assert!(p("*dirty*").matches("file_dirty"));
        assert!(p("*").matches("anything"));
        assert_eq!(
            error(Syntax::Wildcard, ""),
            "device_excluded: empty pattern"
        );
        assert!(error(Syntax::Wildcard, "a*b").starts_with("device_excluded: `a*b`"));
        assert!(error(Syntax::Wildcard, "pgscan_(direct|kswapd)").contains("re:<regex>"));
    }

    #[test]
    fn exclusion_wins_and_empty_include_means_all() {
        let f = excluding(Syntax::Wildcard, &["total_*"]);
        assert!(f.matches("active_anon"));
        assert!(!f.matches("total_active_anon"));
        let f = including(Syntax::Wildcard, &["*active_anon"])
            .exclude("excluded", &list(&["total_*"]))
            .unwrap();
        assert!(f.matches("inactive_anon"));
        assert!(!f.matches("total_inactive_anon"));
        assert!(!f.matches("rss"));
        assert!(NameFilter::new(Syntax::Prefix).matches("anything"));
    }

    #[test]
    fn errors_name_the_list() {
        let err = NameFilter::new(Syntax::Prefix)
            .include("included", &list(&["Tcp_*"]))
            .unwrap()
            .exclude("excluded", &list(&["*Tcp"]))
            .unwrap_err();
        assert!(err.starts_with("excluded: pattern `*Tcp`"), "{err}");
        assert_eq!(
            invalid_config("netstat")(err).to_string(),
            "netstat: malformed config [probes.netstat]: excluded: pattern `*Tcp`: `*` is only \
             allowed at the end (exact name or prefix*)"
        );
    }
}
