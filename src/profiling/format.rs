//! The encodings a profile can be asked for (`format=` of `GET /v1/profile`, the CLI's `-o`
//! extension), and encoding a profile in one.

use super::{flamedata, flamegraph, folded, Profile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Flame graph SVG (inferno).
    Svg,
    /// Folded stacks text.
    Folded,
    /// Upstream's flamedata JSON (`[{level, value, self, label}]`).
    FlameData,
    /// gzip'd pprof `profile.proto`.
    Pprof,
    /// The profile model itself as JSON (what the CLI reads to render locally).
    Raw,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    FlameGraph(#[from] flamegraph::FlameGraphError),
    #[error("cannot encode the profile as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl OutputFormat {
    /// Every name `parse` accepts.
    pub const NAMES: &'static str = "svg, folded, json, pprof, raw";

    /// `svg`, `folded`, `json` (flamedata), `pprof`, `raw`.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "svg" => OutputFormat::Svg,
            "folded" => OutputFormat::Folded,
            "json" | "flamedata" => OutputFormat::FlameData,
            "pprof" => OutputFormat::Pprof,
            "raw" => OutputFormat::Raw,
            other => return Err(format!("unknown format `{other}` (one of {})", Self::NAMES)),
        })
    }

    /// The format an output file name asks for by its extension (`flame.svg`, `x.folded`,
    /// `x.json`, `x.pprof` / `x.pb.gz`).
    pub fn from_file_name(name: &str) -> Result<Self, String> {
        let lower = name.to_ascii_lowercase();
        let format = [
            (".svg", OutputFormat::Svg),
            (".folded", OutputFormat::Folded),
            (".txt", OutputFormat::Folded),
            (".json", OutputFormat::FlameData),
            (".pprof", OutputFormat::Pprof),
            (".pb.gz", OutputFormat::Pprof),
        ]
        .into_iter()
        .find(|(ext, _)| lower.ends_with(ext));
        format.map(|(_, f)| f).ok_or_else(|| {
            format!("cannot tell the format of `{name}`: use .svg, .folded, .json or .pprof")
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Svg => "image/svg+xml",
            OutputFormat::Folded => "text/plain; charset=utf-8",
            OutputFormat::FlameData | OutputFormat::Raw => "application/json",
            OutputFormat::Pprof => "application/octet-stream",
        }
    }
}

/// `profile` in `format`; `title` heads a flame graph.
pub fn encode(
    profile: &Profile,
    format: OutputFormat,
    title: &str,
) -> Result<Vec<u8>, EncodeError> {
    Ok(match format {
        OutputFormat::Svg => flamegraph::to_svg(profile, title)?,
        OutputFormat::Folded => folded::to_folded(profile).into_bytes(),
        OutputFormat::FlameData => serde_json::to_vec(&flamedata::to_flamedata(profile))?,
        OutputFormat::Raw => serde_json::to_vec(profile)?,
        OutputFormat::Pprof => super::pprof::encode(profile),
    })
}
