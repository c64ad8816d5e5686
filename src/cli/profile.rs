//! `huatuo-bamai profile`: asks a running agent for a capture (`GET /v1/profile?format=raw`),
//! shows a progress bar while it runs, writes the profile in the format the output file's
//! extension names (encoded here from the model) and prints the top frames on stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::profiling::summary::top_frames;
use crate::profiling::{encode, folded, OutputFormat, Profile};

#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    /// The agent's HTTP address, HOST:PORT (default: http.listen of the configuration).
    #[arg(long)]
    pub server: Option<String>,
    /// How long to sample, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Profile one container (id, id prefix, name or hostname).
    #[arg(long, conflicts_with = "pid")]
    pub container: Option<String>,
    /// Profile one process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// cpu (on-CPU samples) or offcpu (time blocked).
    #[arg(long = "type", default_value = "cpu", value_parser = ["cpu", "offcpu"])]
    pub kind: String,
    /// Off-CPU phase: all, blocked or runqueue.
    #[arg(long, value_parser = ["all", "blocked", "runqueue"])]
    pub phase: Option<String>,
    /// On-CPU sampling frequency in Hz (default: the agent's capture_frequency_hz, 99).
    #[arg(long)]
    pub frequency: Option<u32>,
    /// Kernel stacks only.
    #[arg(long)]
    pub kernel_only: bool,
    /// Output file; its extension picks the format: .svg, .folded, .json (flamedata), .pprof.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Frames in the summary.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileCliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the agent at {server}: {source}")]
    Connect {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the agent refused the capture ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the agent's reply is not a profile: {0}")]
    Decode(#[from] serde_json::Error),
    #[error(transparent)]
    Encode(#[from] crate::profiling::EncodeError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The query string of the capture `args` ask for.
pub fn query_of(args: &ProfileArgs) -> Result<String, ProfileCliError> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        return Err(ProfileCliError::Usage(format!(
            "--seconds must be a positive number, got {}",
            args.seconds
        )));
    }
    if args.phase.is_some() && args.kind != "offcpu" {
        return Err(ProfileCliError::Usage("--phase needs --type offcpu".into()));
    }
    let mut query = format!("seconds={}&type={}&format=raw", args.seconds, args.kind);
    if let Some(container) = &args.container {
        query.push_str(&format!("&container={}", encode_component(container)));
    }
    if let Some(pid) = args.pid {
        query.push_str(&format!("&pid={pid}"));
    }
    if let Some(phase) = &args.phase {
        query.push_str(&format!("&phase={phase}"));
    }
    if let Some(hz) = args.frequency {
        query.push_str(&format!("&frequency={hz}"));
    }
    if args.kernel_only {
        query.push_str("&kernel_only=true");
    }
    Ok(query)
}

/// Percent-encodes everything but unreserved URL characters.
fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(server: &str, args: &ProfileArgs) -> ExitCode {
    match capture(server, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huatuo-bamai profile: {e}");
            ExitCode::from(1)
        }
    }
}

fn capture(server: &str, args: &ProfileArgs) -> Result<(), ProfileCliError> {
    let format = OutputFormat::from_file_name(&args.output.to_string_lossy())
        .map_err(ProfileCliError::Usage)?;
    let query = query_of(args)?;
    let bar = progress_bar(args.seconds);
    let result = fetch(server, &query, args.seconds);
    bar.finish_and_clear();
    let profile = result?;
    let title = format!(
        "{} profile on {} ({:.1} s)",
        profile.kind.as_str(),
        profile.host,
        profile.duration_ns as f64 / 1e9
    );
    let body = encode(&profile, format, &title)?;
    std::fs::write(&args.output, &body).map_err(|source| ProfileCliError::Write {
        path: args.output.clone(),
        source,
    })?;
    eprint!("{}", summary(&profile, args.top));
    eprintln!("wrote {} ({} bytes)", args.output.display(), body.len());
    Ok(())
}

fn progress_bar(seconds: f64) -> indicatif::ProgressBar {
    let ticks = (seconds * 10.0).ceil() as u64;
    let bar = indicatif::ProgressBar::new(ticks);
    bar.set_style(
        indicatif::ProgressStyle::with_template("sampling {bar:40} {elapsed}/{msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{seconds}s"));
    let ticking = bar.clone();
    // The capture is one blocking request: the bar follows the clock.
    std::thread::spawn(move || {
        while !ticking.is_finished() && ticking.position() < ticks {
            std::thread::sleep(Duration::from_millis(100));
            ticking.inc(1);
        }
    });
    bar
}

fn fetch(server: &str, query: &str, seconds: f64) -> Result<Profile, ProfileCliError> {
    let connect = |source| ProfileCliError::Connect {
        server: server.to_string(),
        source,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs_f64(seconds + 60.0))
        .build()
        .map_err(connect)?;
    let response = client
        .get(format!("http://{server}/v1/profile?{query}"))
        .send()
        .map_err(connect)?;
    let status = response.status().as_u16();
    let body = response.bytes().map_err(connect)?;
    if status != 200 {
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(ProfileCliError::Refused { status, message });
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Totals and the top frames, as printed on stderr.
pub fn summary(profile: &Profile, top: usize) -> String {
    let unit = folded::value_unit(profile.kind);
    let total: u64 = profile
        .samples
        .iter()
        .map(|s| folded::sample_value(profile.kind, s))
        .sum();
    let mut text = format!(
        "{} profile: {} stacks, {total} {unit}\n",
        profile.kind.as_str(),
        profile.samples.len()
    );
    for frame in top_frames(profile, top) {
        text.push_str(&format!(
            "{:>6.1}% {:>10} {unit}  {}{}\n",
            frame.share * 100.0,
            frame.value,
            frame.label,
            frame.module.map(|m| format!("  ({m})")).unwrap_or_default()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProfileArgs,
    }

    fn parse(argv: &[&str]) -> Result<ProfileArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("profile").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn arguments_become_the_capture_query() {
        let args = parse(&[
            "--seconds",
            "3",
            "--container",
            "web app",
            "--type",
            "offcpu",
            "--phase",
            "blocked",
            "-o",
            "x.svg",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            query_of(&args).unwrap_or_default(),
            "seconds=3&type=offcpu&format=raw&container=web%20app&phase=blocked"
        );
        assert!(parse(&["--pid", "1", "--container", "x", "-o", "x.svg"]).is_err());
        assert!(parse(&["--type", "gpu", "-o", "x.svg"]).is_err());
        let args = parse(&["--phase", "blocked", "-o", "x.svg"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(query_of(&args).is_err(), "--phase without offcpu");
        let args = parse(&["--seconds=-2", "-o", "x.svg"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(query_of(&args)
            .unwrap_err()
            .to_string()
            .contains("--seconds"));
    }

    #[test]
    fn summary_lists_the_hottest_leaf_first() {
        use crate::profiling::{Frame, ProfileKind, SampleLabels, StackSample};
        let sample = |f: &str, count| StackSample {
            frames: vec![Frame {
                function: f.into(),
                module: Some("/bin/x".into()),
                kernel: false,
                address: 1,
            }],
            labels: SampleLabels::default(),
            count,
            value_ns: 0,
        };
        let profile = Profile {
            kind: ProfileKind::Cpu,
            start_unix_ns: 0,
            duration_ns: 1,
            frequency_hz: 99,
            host: "h".into(),
            samples: vec![sample("cold", 1), sample("hot", 3)],
        };
        let text = summary(&profile, 5);
        let hot = text.find("hot").unwrap_or(usize::MAX);
        let cold = text.find("cold").unwrap_or(0);
        assert!(hot < cold, "{text}");
        assert!(
            text.contains("75.0%") && text.contains("4 samples"),
            "{text}"
        );
    }
}
