//! `GET /v1/profile`: an on-demand profile of the host, a container or a process, taken by the
//! profile probe (through the capture slot) and encoded as asked. `?window=last` answers the
//! newest continuous window instead of capturing.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::envelope::error_response;
use super::Shared;
use crate::core::capture::{CaptureError, CaptureRequest, CaptureTarget, OffCpuPhase};
use crate::profiling::{encode, OutputFormat, Profile, ProfileKind};

const PARAMS: &str = "seconds, type, container, pid, format, frequency, phase, kernel_only, window";
const DEFAULT_SECONDS: u64 = 10;

/// A parsed query: what to capture and how to encode it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileQuery {
    pub request: CaptureRequest,
    pub format: OutputFormat,
    /// Name/id the caller gave for the container (resolved to `request.target`).
    pub container: Option<String>,
    /// Answer the newest continuous window instead of capturing.
    pub latest_window: bool,
}

/// Parses the query; every error names the parameter.
pub fn parse_query(params: &[(String, String)]) -> Result<ProfileQuery, String> {
    let mut request = CaptureRequest {
        kind: ProfileKind::Cpu,
        duration: Duration::from_secs(DEFAULT_SECONDS),
        target: CaptureTarget::Host,
        frequency_hz: None,
        phase: OffCpuPhase::All,
        kernel_only: false,
    };
    let mut format = OutputFormat::Svg;
    let mut container = None;
    let mut latest_window = false;
    let mut phase_given = false;
    for (key, value) in params {
        match key.as_str() {
            "seconds" => {
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("seconds: `{value}` is not a positive number"))?;
                request.duration = Duration::from_secs_f64(secs.min(1e6));
            }
            "type" => {
                request.kind = match value.as_str() {
                    "cpu" => ProfileKind::Cpu,
                    "offcpu" => ProfileKind::OffCpu,
                    other => return Err(format!("type: `{other}` is not cpu or offcpu")),
                }
            }
            "container" if !value.is_empty() => container = Some(value.clone()),
            "pid" => {
                let pid: u32 = value
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("pid: `{value}` is not a process id"))?;
                request.target = CaptureTarget::Process { pid };
            }
            "format" => format = OutputFormat::parse(value).map_err(|e| format!("format: {e}"))?,
            "frequency" => {
                let hz: u32 = value
                    .parse()
                    .ok()
                    .filter(|hz| (1..=1000).contains(hz))
                    .ok_or_else(|| format!("frequency: `{value}` is not 1..=1000 Hz"))?;
                request.frequency_hz = Some(hz);
            }
            "phase" => {
                request.phase = OffCpuPhase::parse(value).map_err(|e| format!("phase: {e}"))?;
                phase_given = true;
            }
            "kernel_only" => {
                request.kernel_only = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => return Err(format!("kernel_only: `{other}` is not true or false")),
                }
            }
            "window" => match value.as_str() {
                "last" => latest_window = true,
                other => return Err(format!("window: `{other}` is not `last`")),
            },
            "container" => {}
            other => return Err(format!("unknown parameter `{other}` (known: {PARAMS})")),
        }
    }
    if container.is_some() && matches!(request.target, CaptureTarget::Process { .. }) {
        return Err("container and pid: give one target, not both".into());
    }
    if phase_given && request.kind != ProfileKind::OffCpu {
        return Err("phase: only an off-CPU profile (type=offcpu) has phases".into());
    }
    Ok(ProfileQuery {
        request,
        format,
        container,
        latest_window,
    })
}

fn capture_error(error: CaptureError) -> Response {
    let status = match error {
        CaptureError::Busy { .. } => StatusCode::CONFLICT,
        CaptureError::Invalid(_) => StatusCode::BAD_REQUEST,
        CaptureError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CaptureError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(status, error.to_string())
}

fn unavailable() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the profile probe is not running (enable probes.profile; see `huatuo-bamai ctl status`)",
    )
}

pub async fn profile(
    State(shared): State<Shared>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let mut query = match parse_query(&params) {
        Ok(query) => query,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    if let Some(wanted) = &query.container {
        match resolve_container(&shared, wanted) {
            Some(target) => query.request.target = target,
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    format!("container: no single known container is `{wanted}` (id, id prefix, name or hostname)"),
                )
            }
        }
    }
    let Some(capturer) = shared.ctx.captures.get() else {
        return unavailable();
    };
    let profile = if query.latest_window {
        match capturer.latest_window(query.request.kind) {
            Some(window) => filter_window(&window, &query.request.target),
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    format!(
                        "window: no finished continuous {} window (probes.profile.continuous off, or the first window is not over)",
                        query.request.kind.as_str()
                    ),
                )
            }
        }
    } else {
        let reply = match capturer.start(query.request.clone()) {
            Ok(reply) => reply,
            Err(e) => return capture_error(e),
        };
        match reply.await {
            Ok(Ok(profile)) => profile,
            Ok(Err(e)) => return capture_error(e),
            Err(_) => {
                return capture_error(CaptureError::Failed(
                    "the capture ended without a result (probe stopped?)".into(),
                ))
            }
        }
    };
    respond(&profile, &query)
}

/// The capture target of the one known container whose id, name or hostname is `wanted`, or
/// whose id alone starts with it.
pub(super) fn resolve_container(shared: &Shared, wanted: &str) -> Option<CaptureTarget> {
    let set = shared.ctx.containers_tx.borrow().clone();
    let found = set
        .iter()
        .find(|c| c.id == wanted || c.name == wanted || c.hostname == wanted)
        .or_else(|| {
            let mut by_prefix = set.iter().filter(|c| c.id.starts_with(wanted));
            match (by_prefix.next(), by_prefix.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })?;
    Some(CaptureTarget::Container {
        id: found.id.clone(),
        cgroup_id: found.cgroup_id,
        cpu_cgroup_id: found.cpu_cgroup_id,
    })
}

/// A continuous window narrowed to the target (its samples carry pid and container id).
fn filter_window(window: &Profile, target: &CaptureTarget) -> Profile {
    let mut profile = window.clone();
    profile.samples.retain(|s| match target {
        CaptureTarget::Host => true,
        CaptureTarget::Container { id, .. } => s.labels.container_id.as_deref() == Some(id),
        CaptureTarget::Process { pid } => s.labels.pid == *pid,
    });
    profile
}

/// The heading of a flame graph of `profile` taken of `target`.
pub(super) fn title(profile: &Profile, target: &CaptureTarget) -> String {
    format!(
        "{} profile of {} on {} ({:.1} s)",
        profile.kind.as_str(),
        target,
        profile.host,
        profile.duration_ns as f64 / 1e9
    )
}

fn respond(profile: &Profile, query: &ProfileQuery) -> Response {
    let title = title(profile, &query.request.target);
    match encode(profile, query.format, &title) {
        Ok(body) => {
            metrics::counter!("huatuo_bamai_profile_bytes_total", "format" => format_name(query.format))
                .increment(body.len() as u64);
            ([(header::CONTENT_TYPE, query.format.content_type())], body).into_response()
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(super) fn format_name(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Svg => "svg",
        OutputFormat::Folded => "folded",
        OutputFormat::FlameData => "json",
        OutputFormat::Pprof => "pprof",
        OutputFormat::Raw => "raw",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ProfileQuery, String> {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_query(&params)
    }

    #[test]
    fn defaults_are_a_ten_second_cpu_flame_graph_of_the_host() {
        let query = q(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(query.request.kind, ProfileKind::Cpu);
        assert_eq!(query.request.duration, Duration::from_secs(10));
        assert_eq!(query.request.target, CaptureTarget::Host);
        assert_eq!(query.format, OutputFormat::Svg);
    }

    #[test]
    fn parameters_parse_and_bad_ones_are_named() {
        let query = q(&[
            ("seconds", "2.5"),
            ("type", "offcpu"),
            ("pid", "7"),
            ("format", "folded"),
            ("phase", "blocked"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(query.request.duration, Duration::from_millis(2500));
        assert_eq!(query.request.target, CaptureTarget::Process { pid: 7 });
        assert_eq!(query.request.phase, OffCpuPhase::Blocked);
        for (pairs, names) in [
            (vec![("seconds", "-1")], "seconds"),
            (vec![("seconds", "abc")], "seconds"),
            (vec![("type", "gpu")], "type"),
            (vec![("pid", "0")], "pid"),
            (vec![("format", "png")], "format"),
            (vec![("frequency", "5000")], "frequency"),
            (vec![("bogus", "1")], "bogus"),
            (
                vec![("pid", "3"), ("container", "web")],
                "container and pid",
            ),
            (vec![("phase", "blocked")], "phase"),
            (vec![("window", "first")], "window"),
        ] {
            let err = q(&pairs).unwrap_err();
            assert!(err.contains(names), "{pairs:?}: {err}");
        }
    }
}
