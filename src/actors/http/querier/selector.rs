//! Prometheus-style label selectors (`{name="v", name!="v", name=~"re", name!~"re"}`).

use super::*;

#[derive(Debug)]
pub(super) enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug)]
pub(super) struct Matcher {
    pub(super) name: String,
    pub(super) op: Op,
    pub(super) value: String,
    pub(super) regex: Option<regex::Regex>,
}

impl Matcher {
    pub(super) fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match self.op {
            Op::Eq => value == self.value,
            Op::Ne => value != self.value,
            Op::Re => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            Op::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }
}

/// `{name="value", name!="v", name=~"re", name!~"re"}`; `{}` or "" selects everything.
pub(super) fn parse_selector(text: &str) -> Result<Vec<Matcher>, ConnectError> {
    let bad = |why: &str| ConnectError::invalid(format!("label selector `{text}`: {why}"));
    let inner = text.trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let inner = inner
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("must be {…}"))?;
    let mut matchers = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            return Err(bad("expected a label name"));
        }
        rest = rest[name_len..].trim_start();
        let (op, len) = if rest.starts_with("=~") {
            (Op::Re, 2)
        } else if rest.starts_with("!~") {
            (Op::NotRe, 2)
        } else if rest.starts_with("!=") {
            (Op::Ne, 2)
        } else if rest.starts_with('=') {
            (Op::Eq, 1)
        } else {
            return Err(bad(&format!("expected =, !=, =~ or !~ after `{name}`")));
        };
        rest = rest[len..].trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| bad(&format!("the value of `{name}` must be quoted")))?;
        let mut value = String::new();
        let mut chars = rest[1..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c if c == quote => {
                    end = Some(i + 2);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| bad("unterminated value"))?;
        rest = rest[end..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        let regex = match op {
            Op::Re | Op::NotRe => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| bad(&format!("regex of `{name}`: {e}")))?,
            ),
            _ => None,
        };
        matchers.push(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        });
    }
    Ok(matchers)
}

pub(super) fn parse_all(selectors: &[String]) -> Result<Vec<Vec<Matcher>>, ConnectError> {
    selectors.iter().map(|s| parse_selector(s)).collect()
}
