//! Prometheus text format: escaping, label lists and number formatting.

use std::fmt::Write as _;

pub(super) fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn write_labels(
    out: &mut String,
    labels: &[(&'static str, String)],
    global: &[(String, String)],
) {
    if labels.is_empty() && global.is_empty() {
        return;
    }
    out.push('{');
    let mut first = true;
    let own = labels.iter().map(|(k, v)| (*k, v.as_str()));
    let global = global.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in global.chain(own) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{key}=\"{}\"", escape_value(value));
    }
    out.push('}');
}

pub(super) fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}
