//! Include/exclude lists of names (devices, `Proto_Field` keys): each entry is an exact name or
//! a prefix ending in `*`. Shared by the netdev and netstat probes.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => name == exact,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

/// A name passes when `included` is empty or matches it, and `excluded` does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFilter {
    included: Vec<Pattern>,
    excluded: Vec<Pattern>,
}

impl NameFilter {
    /// Builds the filter; `included_key`/`excluded_key` name the config keys in errors.
    pub fn new(
        included_key: &str,
        included: &[String],
        excluded_key: &str,
        excluded: &[String],
    ) -> Result<Self, String> {
        Ok(Self {
            included: parse_patterns(included_key, included)?,
            excluded: parse_patterns(excluded_key, excluded)?,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        (self.included.is_empty() || self.included.iter().any(|p| p.matches(name)))
            && !self.excluded.iter().any(|p| p.matches(name))
    }
}

fn parse_patterns(key: &str, list: &[String]) -> Result<Vec<Pattern>, String> {
    list.iter()
        .map(|raw| {
            if raw.is_empty() {
                return Err(format!("{key}: empty pattern"));
            }
            let (body, prefix) = match raw.strip_suffix('*') {
                Some(body) => (body, true),
                None => (raw.as_str(), false),
            };
            if body.contains('*') {
                return Err(format!(
                    "{key}: pattern `{raw}`: `*` is only allowed at the end (exact name or prefix*)"
                ));
            }
            Ok(if prefix {
                Pattern::Prefix(body.to_string())
            } else {
                Pattern::Exact(body.to_string())
            })
        })
        .collect()
}
