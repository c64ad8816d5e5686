//! `huatuo-bamai events …`: reads the events a running agent stored, over its HTTP API
//! (`GET /v1/events`, `GET /v1/events/<tracer_id>`), as readable tables or `--json`, and follows
//! new ones live (`POST /v1/events/watch`).

mod client;
mod render;
mod time_arg;

use std::process::ExitCode;
use std::time::SystemTime;

use client::{fetch, ClientError};
use render::{render_document, render_table, tail_line};
use time_arg::{list_path, ListArgError};

/// Why an `events` command failed; printed after `huatuo-bamai events: `.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Agent(#[from] ClientError),
    #[error(transparent)]
    Argument(#[from] ListArgError),
    #[error("`{0}` is not a tracer_id (see the ID column of `events list`)")]
    NotATracerId(String),
    #[error("cannot print the reply as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// The agent's HTTP address, HOST:PORT (default: http.listen of the configuration).
    #[arg(long, global = true)]
    pub server: Option<String>,
    #[command(subcommand)]
    pub action: EventsAction,
}

#[derive(clap::Subcommand)]
pub enum EventsAction {
    /// Stored events, oldest first: time, tracer, container, id and a summary.
    List(ListArgs),
    /// Follow new events live (the agent's POST /v1/events/watch stream), one line each.
    Tail {
        /// Only events of tracers matching this regular expression (`oom`, `^(oom|hungtask)$`).
        #[arg(long = "type", value_name = "REGEX")]
        tracer: Option<String>,
        /// Print each CloudEvents envelope as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// One stored event in full.
    Show {
        /// The event's tracer_id (the ID column of `events list`).
        id: String,
        /// Print the document as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Default)]
pub struct ListArgs {
    /// Events since: a time back from now (`30s`, `15m`, `1h`, `7d`), RFC 3339 or Unix seconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Events until (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only events of this tracer (`oom`, `hungtask`, …).
    #[arg(long = "type", visible_alias = "tracer-name", value_name = "TRACER")]
    pub tracer: Option<String>,
    /// Only events of this container: an id prefix, its hostname or its name.
    #[arg(long)]
    pub container: Option<String>,
    /// At most this many events, the newest (agent default 100, at most 10000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the documents as a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Where to reach an agent listening on `listen`: a wildcard address means this host.
pub fn server_of_listen(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        return format!("127.0.0.1:{port}");
    }
    if let Some(port) = listen.strip_prefix("[::]:") {
        return format!("[::1]:{port}");
    }
    listen.to_string()
}

pub fn run(server: &str, action: EventsAction) -> ExitCode {
    let result = match action {
        EventsAction::List(args) => list(server, &args),
        EventsAction::Show { id, json } => show(server, &id, json),
        EventsAction::Tail { tracer, json } => tail(server, tracer.as_deref(), json),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("huatuo-bamai events: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Streams events until the agent closes the stream; prints as they arrive.
fn tail(server: &str, tracer: Option<&str>, json: bool) -> Result<String, EventsError> {
    use std::io::Write;
    let filters = match tracer {
        Some(regex) => serde_json::json!({ "filters": { "tracer_name": regex } }),
        None => serde_json::json!({ "filters": {} }),
    };
    let stdout = std::io::stdout();
    for event in client::watch(server, &filters)? {
        let event = event?;
        let mut out = stdout.lock();
        let printed = if json {
            writeln!(out, "{event}")
        } else {
            writeln!(out, "{}", tail_line(&event))
        };
        if printed.and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok("stream closed by the agent".to_string())
}

fn list(server: &str, args: &ListArgs) -> Result<String, EventsError> {
    let path = list_path(args, SystemTime::now())?;
    let data = fetch(server, &path)?;
    let documents = data.as_array().cloned().unwrap_or_default();
    if args.json {
        return Ok(serde_json::to_string_pretty(&documents)?);
    }
    Ok(render_table(&documents))
}

fn show(server: &str, id: &str, json: bool) -> Result<String, EventsError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(EventsError::NotATracerId(id.to_string()));
    }
    let document = fetch(server, &format!("/v1/events/{id}"))?;
    if json {
        return Ok(serde_json::to_string_pretty(&document)?);
    }
    Ok(render_document(&document))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_defaults_to_this_host_for_wildcard_listeners() {
        assert_eq!(server_of_listen("0.0.0.0:19704"), "127.0.0.1:19704");
        assert_eq!(server_of_listen("[::]:19704"), "[::1]:19704");
        assert_eq!(server_of_listen("10.0.0.1:19704"), "10.0.0.1:19704");
    }
}
