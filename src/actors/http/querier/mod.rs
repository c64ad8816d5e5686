//! Grafana's Pyroscope datasource without Pyroscope: `querier.v1.QuerierService` over the
//! Connect protocol (unary POST, `application/proto` as Grafana's Go client sends, or
//! `application/json`), under upstream's `/v1/profiles/flamegraph/` prefix, answered from the
//! recent windows in memory ([`RecentProfiles`]). Methods: ProfileTypes, LabelNames,
//! LabelValues, SelectMergeStacktraces (flame graph), SelectSeries (totals over time).
//!
//! Labels of every sample: service_name, hostname, container_id, container_name, pod, comm,
//! pid. Selectors are Prometheus-style (`{container_name="web",comm=~"ng.*"}`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Shared;
use crate::profiling::proto::querier as pb;
use crate::profiling::{Profile, ProfileKind, StackSample};

mod flamegraph;
mod requests;
mod selector;

use flamegraph::*;
use requests::*;
use selector::*;

/// A Connect error: `{"code", "message"}` with the code's HTTP status.
#[derive(Debug)]
struct ConnectError {
    code: &'static str,
    message: String,
}

impl ConnectError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_argument",
            message: message.into(),
        }
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let status = match self.code {
            "invalid_argument" => StatusCode::BAD_REQUEST,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "code": self.code, "message": self.message }).to_string(),
        )
            .into_response()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Codec {
    Proto,
    Json,
}

/// A profile type the windows can answer: which kind and which value of a sample.
struct TypeSpec {
    id: &'static str,
    kind: ProfileKind,
    /// Sample count instead of time.
    count: bool,
}

const TYPES: [TypeSpec; 3] = [
    TypeSpec {
        id: "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        kind: ProfileKind::Cpu,
        count: false,
    },
    TypeSpec {
        id: "process_cpu:samples:count:cpu:nanoseconds",
        kind: ProfileKind::Cpu,
        count: true,
    },
    TypeSpec {
        id: "process_offcpu:offcpu:nanoseconds:offcpu:nanoseconds",
        kind: ProfileKind::OffCpu,
        count: false,
    },
];

fn type_spec(id: &str) -> Result<&'static TypeSpec, ConnectError> {
    TYPES.iter().find(|t| t.id == id).ok_or_else(|| {
        let known: Vec<&str> = TYPES.iter().map(|t| t.id).collect();
        ConnectError::invalid(format!(
            "profile type `{id}` is not one of {}",
            known.join(", ")
        ))
    })
}

/// `POST /v1/profiles/flamegraph/querier.v1.QuerierService/{method}`.
pub(super) async fn handle(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match answer(&shared, &method, &headers, &body) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn answer(
    shared: &Shared,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ConnectError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/proto");
    let codec = match content_type.split(';').next().map(str::trim) {
        Some("application/proto") | Some("application/protobuf") => Codec::Proto,
        Some("application/json") => Codec::Json,
        Some(other) => {
            return Err(ConnectError::invalid(format!(
                "Content-Type `{other}`: application/proto or application/json (Connect unary)"
            )))
        }
        None => Codec::Proto,
    };
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| ConnectError::invalid(format!("gzip body: {e}")))?;
            out
        }
        Some(other) => {
            return Err(ConnectError::invalid(format!(
                "Content-Encoding `{other}` is not supported (gzip or identity)"
            )))
        }
    };
    let windows = shared.recent.windows();
    let app = shared.application_name.as_str();
    let reply = match method {
        "ProfileTypes" => {
            let req: pb::ProfileTypesRequest = decode::<_, ProfileTypesJson>(codec, &body)?;
            profile_types(&windows, req.start, req.end).into()
        }
        "LabelNames" => {
            let req: pb::LabelNamesRequest = decode::<_, LabelNamesJson>(codec, &body)?;
            let matchers = parse_all(&req.matchers)?;
            label_names(&windows, app, &matchers, req.start, req.end).into()
        }
        "LabelValues" => {
            let req: pb::LabelValuesRequest = decode::<_, LabelValuesJson>(codec, &body)?;
            let matchers = parse_all(&req.matchers)?;
            label_values(&windows, app, &req.name, &matchers, req.start, req.end).into()
        }
        "SelectMergeStacktraces" => {
            let req: pb::SelectMergeStacktracesRequest =
                decode::<_, SelectMergeJson>(codec, &body)?;
            if req.format == 2 {
                return Err(ConnectError::invalid(
                    "format PROFILE_FORMAT_TREE is not served: ask for the flame graph",
                ));
            }
            let spec = type_spec(&req.profile_type_id)?;
            let selector = parse_selector(&req.label_selector)?;
            let tree = merge(&windows, app, spec, &selector, req.start, req.end);
            Reply::Flame(flame_graph(&tree, req.max_nodes.unwrap_or(0)))
        }
        "SelectSeries" => {
            let req: pb::SelectSeriesRequest = decode::<_, SelectSeriesJson>(codec, &body)?;
            let spec = type_spec(&req.profile_type_id)?;
            let selector = parse_selector(&req.label_selector)?;
            Reply::Series(select_series(&windows, app, spec, &selector, &req))
        }
        other => {
            return Err(ConnectError {
                code: "unimplemented",
                message: format!("querier.v1.QuerierService/{other} is not served by the agent"),
            })
        }
    };
    Ok(reply.into_response(codec))
}

// ---- requests ----------------------------------------------------------------------------

/// Protobuf, or protojson (camelCase or proto names; int64 as a string or a number).
fn decode<P, J>(codec: Codec, body: &[u8]) -> Result<P, ConnectError>
where
    P: Message + Default,
    J: DeserializeOwned + Into<P>,
{
    match codec {
        Codec::Proto => {
            P::decode(body).map_err(|e| ConnectError::invalid(format!("protobuf: {e}")))
        }
        Codec::Json if body.is_empty() => Ok(P::default()),
        Codec::Json => serde_json::from_slice::<J>(body)
            .map(Into::into)
            .map_err(|e| ConnectError::invalid(format!("JSON: {e}"))),
    }
}

const LABEL_NAMES: [&str; 8] = [
    "__profile_type__",
    "service_name",
    "hostname",
    "container_id",
    "container_name",
    "pod",
    "comm",
    "pid",
];

/// The value of label `name` for a sample of `window`.
fn label(
    name: &str,
    app: &str,
    window: &Profile,
    sample: &StackSample,
    profile_type: &str,
) -> Option<String> {
    let l = &sample.labels;
    match name {
        "__profile_type__" => Some(profile_type.to_string()),
        "service_name" => Some(app.to_string()),
        "hostname" => Some(window.host.clone()),
        "container_id" => l.container_id.clone(),
        "container_name" => l.container_name.clone(),
        "pod" => l.pod.clone(),
        "comm" => Some(l.comm.clone()).filter(|c| !c.is_empty()),
        "pid" => Some(l.pid.to_string()),
        _ => None,
    }
}

fn selected(
    matchers: &[Matcher],
    app: &str,
    window: &Profile,
    sample: &StackSample,
    profile_type: &str,
) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(label(&m.name, app, window, sample, profile_type).as_deref()))
}

/// Windows overlapping [start, end] (milliseconds; 0 = unbounded).
fn in_range(window: &Profile, start_ms: i64, end_ms: i64) -> bool {
    let from = (window.start_unix_ns / 1_000_000) as i64;
    let until = ((window.start_unix_ns + window.duration_ns) / 1_000_000) as i64;
    (start_ms <= 0 || until >= start_ms) && (end_ms <= 0 || from <= end_ms)
}

fn profile_types(
    windows: &[std::sync::Arc<Profile>],
    start: i64,
    end: i64,
) -> pb::ProfileTypesResponse {
    let kinds: BTreeSet<&str> = windows
        .iter()
        .filter(|w| in_range(w, start, end))
        .map(|w| w.kind.as_str())
        .collect();
    let profile_types = TYPES
        .iter()
        .filter(|t| kinds.contains(t.kind.as_str()))
        .map(|t| {
            let parts: Vec<&str> = t.id.split(':').collect();
            pb::ProfileType {
                id: t.id.to_string(),
                name: parts[0].to_string(),
                sample_type: parts[1].to_string(),
                sample_unit: parts[2].to_string(),
                period_type: parts[3].to_string(),
                period_unit: parts[4].to_string(),
            }
        })
        .collect();
    pb::ProfileTypesResponse { profile_types }
}

/// Every (window, sample, type id) in range that one of the matcher groups selects (no group =
/// all).
fn each_selected<'a>(
    windows: &'a [std::sync::Arc<Profile>],
    app: &'a str,
    groups: &'a [Vec<Matcher>],
    start: i64,
    end: i64,
) -> impl Iterator<Item = (&'a Profile, &'a StackSample, &'static str)> + 'a {
    windows
        .iter()
        .filter(move |w| in_range(w, start, end))
        .flat_map(move |w| {
            TYPES
                .iter()
                .filter(move |t| t.kind == w.kind)
                .flat_map(move |t| {
                    w.samples.iter().filter_map(move |s| {
                        let any = groups.is_empty()
                            || groups.iter().any(|g| selected(g, app, w, s, t.id));
                        any.then_some((w.as_ref(), s, t.id))
                    })
                })
        })
}

fn label_names(
    windows: &[std::sync::Arc<Profile>],
    app: &str,
    groups: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> pb::NamesResponse {
    let mut names = BTreeSet::new();
    for (w, s, t) in each_selected(windows, app, groups, start, end) {
        for name in LABEL_NAMES {
            if label(name, app, w, s, t).is_some() {
                names.insert(name.to_string());
            }
        }
    }
    pb::NamesResponse {
        names: names.into_iter().collect(),
    }
}

fn label_values(
    windows: &[std::sync::Arc<Profile>],
    app: &str,
    name: &str,
    groups: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> pb::NamesResponse {
    let values: BTreeSet<String> = each_selected(windows, app, groups, start, end)
        .filter_map(|(w, s, t)| label(name, app, w, s, t))
        .collect();
    pb::NamesResponse {
        names: values.into_iter().collect(),
    }
}

fn value_of(spec: &TypeSpec, sample: &StackSample) -> i64 {
    let value = if spec.count {
        sample.count
    } else {
        sample.value_ns
    };
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn select_series(
    windows: &[std::sync::Arc<Profile>],
    app: &str,
    spec: &TypeSpec,
    selector: &[Matcher],
    req: &pb::SelectSeriesRequest,
) -> pb::SelectSeriesResponse {
    let step_ms = ((req.step * 1000.0) as i64).max(1);
    let mut series: BTreeMap<Vec<(String, String)>, BTreeMap<i64, f64>> = BTreeMap::new();
    let windows = windows
        .iter()
        .filter(|w| w.kind == spec.kind && in_range(w, req.start, req.end));
    for window in windows {
        let at = (window.start_unix_ns / 1_000_000) as i64;
        let bucket = at - at.rem_euclid(step_ms);
        for sample in &window.samples {
            if !selected(selector, app, window, sample, spec.id) {
                continue;
            }
            let key = req
                .group_by
                .iter()
                .filter_map(|name| {
                    label(name, app, window, sample, spec.id).map(|v| (name.clone(), v))
                })
                .collect();
            *series.entry(key).or_default().entry(bucket).or_default() +=
                value_of(spec, sample) as f64;
        }
    }
    pb::SelectSeriesResponse {
        series: series
            .into_iter()
            .map(|(labels, points)| pb::Series {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| pb::LabelPair { name, value })
                    .collect(),
                points: points
                    .into_iter()
                    .map(|(timestamp, value)| pb::Point { value, timestamp })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_name_what_is_wrong() {
        let m = parse_selector(r#"{container_name="web", comm=~"bu.*",pid!="1"}"#).expect("parses");
        assert_eq!(m.len(), 3);
        assert!(m[1].matches(Some("busy")) && !m[1].matches(Some("xbusy")));
        assert!(parse_selector("{}").expect("empty").is_empty());
        let err = |s: &str| {
            parse_selector(s)
                .err()
                .map(|e| e.message)
                .unwrap_or_default()
        };
        assert!(err("{a=b}").contains("quoted"), "{}", err("{a=b}"));
        assert!(err(r#"{a="b}"#).contains("unterminated"));
        assert!(err(r#"{a="b""#).contains("must be {"));
        assert!(err(r#"{a~"b"}"#).contains("expected ="));
    }

    #[test]
    fn the_flame_graph_puts_self_before_children_and_delta_encodes_x() {
        // root → a (self 1) → {b 2, c 3}; root → d 4.
        let mut root = Node::default();
        let mut add = |path: &[&str], v: i64| {
            root.total += v;
            let mut n = &mut root;
            for p in path {
                n = n.children.entry(p.to_string()).or_default();
                n.total += v;
            }
            n.self_value += v;
        };
        add(&["a"], 1);
        add(&["a", "b"], 2);
        add(&["a", "c"], 3);
        add(&["d"], 4);
        let g = flame_graph(&root, 0);
        assert_eq!(g.names, ["total", "a", "b", "c", "d"]);
        assert_eq!(g.total, 10);
        assert_eq!(g.max_self, 4);
        assert_eq!(g.levels[0].values, [0, 10, 0, 0]);
        assert_eq!(g.levels[1].values, [0, 6, 1, 1, 0, 4, 4, 4]);
        // b starts after a's self (x = 1), c right after b.
        assert_eq!(g.levels[2].values, [1, 2, 2, 2, 0, 3, 3, 3]);
        // With 2 nodes at most, the smallest (b, c) become "other".
        let g = flame_graph(&root, 2);
        assert_eq!(g.levels[2].values, [1, 5, 5, 2]);
        assert_eq!(g.names[2], "other");
    }
}
