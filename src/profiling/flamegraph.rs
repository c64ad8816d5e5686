//! Flame graph SVG (inferno, the FlameGraph port) from the folded stacks: viewable in any
//! browser, with search and zoom from inferno's embedded script.

use super::folded::{folded_lines, value_unit};
use super::{Profile, ProfileKind};

#[derive(Debug, thiserror::Error)]
pub enum FlameGraphError {
    #[error("flame graph rendering failed: {0}")]
    Render(String),
}

/// The SVG flame graph of `profile`, titled with `title`.
pub fn to_svg(profile: &Profile, title: &str) -> Result<Vec<u8>, FlameGraphError> {
    svg_from_folded(&folded_lines(profile), profile.kind, title)
}

/// The SVG flame graph of folded stack lines (`a;b;c <value>`, sorted) of a `kind` profile.
pub fn svg_from_folded(
    lines: &[String],
    kind: ProfileKind,
    title: &str,
) -> Result<Vec<u8>, FlameGraphError> {
    if lines.is_empty() {
        // inferno refuses empty input; a viewer should still say why the graph is blank.
        return Ok(empty_svg(title).into_bytes());
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = value_unit(kind).to_string();
    if kind == ProfileKind::OffCpu {
        // FlameGraph's convention for off-CPU graphs: blue.
        options.colors = inferno::flamegraph::color::Palette::Basic(
            inferno::flamegraph::color::BasicPalette::Io,
        );
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(|e| FlameGraphError::Render(e.to_string()))?;
    Ok(svg)
}

fn empty_svg(title: &str) -> String {
    let escaped = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"1200\" height=\"60\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"600\" y=\"24\" text-anchor=\"middle\">{escaped}</text>\
         <text x=\"600\" y=\"48\" text-anchor=\"middle\">No samples</text></svg>\n"
    )
}
