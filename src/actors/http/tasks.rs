//! Upstream's `/tasks` API, the bookkeeping half: the `[tasks]` section, request validation
//! (`{request_id?, tracer_name, timeout, data_type, trace_args[]}`), 16-char task ids and a
//! registry with bounded concurrency and bounded retention of finished tasks, and the `profiler`
//! tracer's flags. The routes are in `task_routes.rs`.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Invalid, Live, Section};

/// Upstream's limit on a task's `timeout` (seconds, exclusive).
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// Tracers a task may name; upstream runs external binaries, we run these in-process.
pub const KNOWN_TRACERS: &[&str] = &["profiler"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// Upstream's task API (`POST /tasks`, `GET /tasks[/<id>]`, `DELETE /tasks/<id>`): on-demand
/// tracer runs such as a profiler capture. Upstream key: `Tasks.MaxConcurrent`.
pub struct TasksConfig {
    /// Tasks running at once; one more is refused with 429.
    pub max_concurrent: usize,
    /// Finished tasks (completed, failed, stopped) kept for `GET /tasks/<id>` ...
    pub keep_finished: usize,
    /// ... and for at most this many seconds after they finished.
    pub keep_finished_secs: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 10,
            keep_finished: 100,
            keep_finished_secs: 3600,
        }
    }
}

impl Section for TasksConfig {
    const PATH: &'static str = "tasks";
    // The registry lives in the HTTP server, which restarts only with the agent.
    const LIVE: Live = Live::RestartAgent;

    fn validate(&self) -> Result<(), Invalid> {
        if self.max_concurrent == 0 {
            return Err(Invalid::field("max_concurrent", "must be at least 1"));
        }
        Ok(())
    }
}

/// A rejected request body, naming the field at fault (answered as 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BadRequest {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> BadRequest {
    BadRequest {
        field,
        reason: reason.into(),
    }
}

/// A validated `POST /tasks` body.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub request_id: Option<String>,
    pub tracer_name: String,
    pub timeout: Duration,
    pub data_type: String,
    pub trace_args: Vec<String>,
}

impl TaskRequest {
    /// Parses and validates a body; field types are checked by hand so the error names the field.
    pub fn parse(body: &[u8]) -> Result<Self, BadRequest> {
        let v: Value = serde_json::from_slice(body).map_err(|e| bad("body", e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("body", "must be a JSON object"))?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "request_id" | "tracer_name" | "timeout" | "data_type" | "trace_args"
            ) {
                return Err(bad("body", format!("unknown field {key:?}")));
            }
        }
        let request_id = match obj.get("request_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("request_id", "must be a string")),
        };
        let tracer_name = match obj.get("tracer_name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None => return Err(bad("tracer_name", "is required")),
            Some(_) => return Err(bad("tracer_name", "must be a non-empty string")),
        };
        if !KNOWN_TRACERS.contains(&tracer_name.as_str()) {
            return Err(bad(
                "tracer_name",
                format!("unknown tracer {tracer_name:?}; known: {KNOWN_TRACERS:?}"),
            ));
        }
        let timeout = match obj.get("timeout").map(Value::as_u64) {
            Some(Some(t)) if t > 0 && t < MAX_TIMEOUT_SECS => Duration::from_secs(t),
            None => return Err(bad("timeout", "is required (seconds)")),
            Some(_) => {
                return Err(bad(
                    "timeout",
                    format!("must be an integer in 1..{MAX_TIMEOUT_SECS} seconds"),
                ))
            }
        };
        let data_type = match obj.get("data_type") {
            None | Some(Value::Null) => "json".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("data_type", "must be a string")),
        };
        let trace_args = match obj.get("trace_args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("trace_args", "must be an array of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("trace_args", "must be an array of strings")),
        };
        Ok(Self {
            request_id,
            tracer_name,
            timeout,
            data_type,
            trace_args,
        })
    }
}

/// The `profiler` tracer's `trace_args` (upstream's `profiler` CLI flags, `--flag value` or
/// `--flag=value`) as `GET /v1/profile` parameters, so both share one validation. `--duration`
/// defaults to 10 s and must end within the task's `timeout`.
pub fn profiler_params(
    args: &[String],
    timeout: Duration,
) -> Result<Vec<(String, String)>, BadRequest> {
    const FLAGS: &str = "--duration, --type, --cpu-mode, --offcpu-phase, --freq, --pid, \
                         --container-id, --format, --kernel-only, --language";
    let mut params = Vec::new();
    let mut duration: Option<f64> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if flag == "--kernel-only" {
            params.push(("kernel_only".to_string(), inline.unwrap_or("true".into())));
            continue;
        }
        if !flag.starts_with("--") {
            return Err(bad(
                "trace_args",
                format!("`{arg}` is not a flag (known: {FLAGS})"),
            ));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| bad("trace_args", format!("{flag} needs a value")))?,
        };
        let param = |key: &str, v: &str| (key.to_string(), v.to_string());
        match flag {
            "--duration" => {
                let secs = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        bad(
                            "trace_args",
                            format!("--duration: `{value}` is not a positive number of seconds"),
                        )
                    })?;
                duration = Some(secs);
            }
            "--type" if value == "cpu" => {}
            "--type" => {
                return Err(bad(
                    "trace_args",
                    format!(
                    "--type: `{value}` is not supported (cpu only: use --cpu-mode oncpu|offcpu)"
                ),
                ))
            }
            "--cpu-mode" => match value.as_str() {
                "oncpu" => params.push(param("type", "cpu")),
                "offcpu" => params.push(param("type", "offcpu")),
                other => {
                    return Err(bad(
                        "trace_args",
                        format!("--cpu-mode: `{other}` is not oncpu or offcpu"),
                    ))
                }
            },
            "--offcpu-phase" => params.push(param("phase", &value)),
            "--freq" => params.push(param("frequency", &value)),
            "--pid" => params.push(param("pid", &value)),
            "--container-id" | "--container" => params.push(param("container", &value)),
            "--format" | "--output" => {
                let name = match value.as_str() {
                    "collapsed" => "folded",
                    "flamegraph" => "svg",
                    other => other,
                };
                params.push(param("format", name));
            }
            // Native stacks are language-agnostic; the runtimes upstream hands to external
            // profilers (async-profiler, py-spy) are not run here.
            "--language" if matches!(value.as_str(), "c" | "c++" | "go" | "rust" | "native") => {}
            "--language" => {
                return Err(bad(
                    "trace_args",
                    format!(
                        "--language: `{value}` is not supported (native stacks: c, c++, go, rust)"
                    ),
                ))
            }
            other => {
                return Err(bad(
                    "trace_args",
                    format!("unknown flag {other} (known: {FLAGS})"),
                ))
            }
        }
    }
    let secs = duration.unwrap_or_else(|| 10f64.min(timeout.as_secs_f64()));
    if secs > timeout.as_secs_f64() {
        return Err(bad(
            "trace_args",
            format!(
                "--duration {secs} s does not end within the task's timeout ({} s)",
                timeout.as_secs()
            ),
        ));
    }
    params.push(("seconds".to_string(), secs.to_string()));
    if !params.iter().any(|(k, _)| k == "format") {
        params.push(("format".to_string(), "json".to_string()));
    }
    Ok(params)
}

/// A finished task's encoded profile, served by `GET /tasks/<id>/result`.
#[derive(Debug)]
pub struct TaskOutput {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Upstream's status words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone)]
pub struct TaskEntry {
    pub id: String,
    pub request: TaskRequest,
    pub status: TaskStatus,
    pub data: Option<Value>,
    pub error: Option<String>,
    /// The encoded result of a completed task.
    pub output: Option<std::sync::Arc<TaskOutput>>,
    finished_at: Option<Instant>,
}

/// Why a task could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("{running} tasks running, the limit (tasks.max_concurrent) is {limit}")]
    TooMany { running: usize, limit: usize },
}

/// 16 random alphanumerics; std's per-process random hasher keys seed it, so no rand crate.
pub fn new_task_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(16);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let mut x = h.finish();
    for i in 0..16 {
        if i == 8 {
            h.write_u64(x);
            x = h.finish();
        }
        out.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
    }
    out
}

/// The tasks known to the agent: live ones plus a bounded tail of finished ones.
#[derive(Debug)]
pub struct TaskRegistry {
    config: TasksConfig,
    tasks: HashMap<String, TaskEntry>,
}

impl TaskRegistry {
    pub fn new(config: TasksConfig) -> Self {
        Self {
            config,
            tasks: HashMap::new(),
        }
    }

    fn live(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| matches!(t.status, TaskStatus::Pending | TaskStatus::Running))
            .count()
    }

    /// Registers a pending task, or refuses past `max_concurrent`.
    pub fn create(&mut self, request: TaskRequest) -> Result<String, CreateError> {
        self.prune(Instant::now());
        let running = self.live();
        if running >= self.config.max_concurrent {
            return Err(CreateError::TooMany {
                running,
                limit: self.config.max_concurrent,
            });
        }
        let mut id = new_task_id();
        while self.tasks.contains_key(&id) {
            id = new_task_id();
        }
        self.tasks.insert(
            id.clone(),
            TaskEntry {
                id: id.clone(),
                request,
                status: TaskStatus::Pending,
                data: None,
                error: None,
                output: None,
                finished_at: None,
            },
        );
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Option<&TaskEntry> {
        self.tasks.get(id)
    }

    pub fn list(&self) -> Vec<&TaskEntry> {
        let mut v: Vec<_> = self.tasks.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Marks a pending task running; false if it is gone or no longer pending.
    pub fn start(&mut self, id: &str) -> bool {
        match self.tasks.get_mut(id) {
            Some(t) if t.status == TaskStatus::Pending => {
                t.status = TaskStatus::Running;
                true
            }
            _ => false,
        }
    }

    /// Ends a task with its result; a task already finished (e.g. stopped) keeps its first end.
    pub fn finish(&mut self, id: &str, result: Result<Value, String>) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        if matches!(t.status, TaskStatus::Completed | TaskStatus::Failed) {
            return;
        }
        match result {
            Ok(data) => {
                t.status = TaskStatus::Completed;
                t.data = Some(data);
            }
            Err(e) => {
                t.status = TaskStatus::Failed;
                t.error = Some(e);
            }
        }
        t.finished_at = Some(Instant::now());
        self.prune(Instant::now());
    }

    /// Ends a task as completed with its data and encoded output (unless it already ended).
    pub fn complete(&mut self, id: &str, data: Value, output: TaskOutput) {
        let live = self
            .tasks
            .get(id)
            .is_some_and(|t| matches!(t.status, TaskStatus::Pending | TaskStatus::Running));
        self.finish(id, Ok(data));
        if live {
            if let Some(t) = self.tasks.get_mut(id) {
                t.output = Some(std::sync::Arc::new(output));
            }
        }
    }

    /// `DELETE /tasks/<id>`: a live task ends as failed "stopped"; false if unknown.
    pub fn stop(&mut self, id: &str) -> bool {
        if !self.tasks.contains_key(id) {
            return false;
        }
        self.finish(id, Err("stopped by DELETE /tasks".to_string()));
        true
    }

    /// Drops finished tasks older than keep_finished_secs, then the oldest past keep_finished.
    fn prune(&mut self, now: Instant) {
        let max_age = Duration::from_secs(self.config.keep_finished_secs);
        self.tasks.retain(|_, t| {
            t.finished_at
                .is_none_or(|f| now.saturating_duration_since(f) <= max_age)
        });
        let mut finished: Vec<(Instant, String)> = self
            .tasks
            .values()
            .filter_map(|t| t.finished_at.map(|f| (f, t.id.clone())))
            .collect();
        if finished.len() > self.config.keep_finished {
            finished.sort();
            let excess = finished.len() - self.config.keep_finished;
            for (_, id) in finished.into_iter().take(excess) {
                self.tasks.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
