//! Continuous profiling to Pyroscope: each window from the profile bus becomes uploads
//! ([`upload`]) sent to `/ingest` one at a time, oldest first. A failed push (no connection,
//! timeout, 429, 5xx) keeps its window at the head of a bounded queue and is retried with a
//! doubling backoff; a refused push (other 4xx) is dropped and counted. Past `queue_windows`
//! the oldest window is dropped, so an outage costs at most the queue.
//!
//! Metrics: huatuo_bamai_pyroscope_push_total{result=ok|error|rejected},
//! huatuo_bamai_pyroscope_dropped_total{reason=queue_full|rejected|lagged} (windows, or pushes
//! for `rejected`), huatuo_bamai_pyroscope_queue_windows, huatuo_bamai_pyroscope_bytes_total.

pub mod config;
pub mod status;
pub mod upload;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::PyroscopeConfig;
pub use status::{PyroscopeStatus, StatusReport};
pub use upload::Upload;

use super::Profile;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot build the Pyroscope HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// How one push ended.
enum Outcome {
    Delivered,
    /// The server refused this upload (4xx other than 429): sending it again would not help.
    Rejected(String),
    /// Transient (connection, timeout, 429, 5xx): keep it and retry later.
    Failed(String),
}

pub struct Pusher {
    config: PyroscopeConfig,
    client: reqwest::Client,
    ingest_url: String,
    /// Windows waiting, oldest first; each holds the uploads not yet delivered.
    queue: VecDeque<VecDeque<Upload>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    status: PyroscopeStatus,
    report: StatusReport,
}

impl Pusher {
    pub fn new(config: PyroscopeConfig, report: StatusReport) -> Result<Self, PushError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(PushError::Client)?;
        let ingest_url = format!("{}/ingest", config.address.trim_end_matches('/'));
        let status = PyroscopeStatus {
            enabled: true,
            idle: true,
            address: config.address.clone(),
            ..Default::default()
        };
        let backoff = Duration::from_millis(config.retry_backoff_initial_ms);
        let pusher = Self {
            config,
            client,
            ingest_url,
            queue: VecDeque::new(),
            retry_at: None,
            backoff,
            status,
            report,
        };
        pusher.publish_status();
        Ok(pusher)
    }

    /// Pushes windows from `windows` until `token` is cancelled (what is queued then is lost:
    /// profiles are a sample, not a record).
    pub async fn run(mut self, mut windows: Receiver<Arc<Profile>>, token: CancellationToken) {
        loop {
            let retry_at = self.retry_at;
            tokio::select! {
                _ = token.cancelled() => return,
                received = windows.recv() => match received {
                    Ok(profile) => self.enqueue(&profile),
                    Err(RecvError::Lagged(n)) => self.dropped("lagged", n),
                    Err(RecvError::Closed) => {
                        token.cancelled().await;
                        return;
                    }
                },
                _ = sleep_until(retry_at), if retry_at.is_some() => self.retry_at = None,
            }
            if self.retry_at.is_none() {
                self.flush(&token).await;
            }
        }
    }

    fn enqueue(&mut self, profile: &Profile) {
        let uploads: VecDeque<Upload> = upload::uploads(profile, &self.config).into();
        if uploads.is_empty() {
            return;
        }
        if self.queue.len() >= self.config.queue_windows {
            self.queue.pop_front();
            self.dropped("queue_full", 1);
        }
        self.queue.push_back(uploads);
        self.publish_status();
    }

    fn dropped(&mut self, reason: &'static str, n: u64) {
        metrics::counter!("huatuo_bamai_pyroscope_dropped_total", "reason" => reason).increment(n);
        self.status.dropped += n;
        self.publish_status();
    }

    /// Sends queued uploads in order until the queue is empty or a push fails.
    async fn flush(&mut self, token: &CancellationToken) {
        while let Some(window) = self.queue.front() {
            let Some(upload) = window.front().cloned() else {
                self.queue.pop_front();
                continue;
            };
            let outcome = tokio::select! {
                _ = token.cancelled() => return,
                outcome = push(&self.client, &self.ingest_url, &self.config, &upload) => outcome,
            };
            self.status.idle = false;
            match outcome {
                Outcome::Delivered => {
                    metrics::counter!("huatuo_bamai_pyroscope_push_total", "result" => "ok")
                        .increment(1);
                    metrics::counter!("huatuo_bamai_pyroscope_bytes_total")
                        .increment(upload.pprof.len() as u64);
                    self.status.pushed += 1;
                    self.status.connected = true;
                    self.backoff = Duration::from_millis(self.config.retry_backoff_initial_ms);
                    self.pop_upload();
                }
                Outcome::Rejected(error) => {
                    metrics::counter!("huatuo_bamai_pyroscope_push_total", "result" => "rejected")
                        .increment(1);
                    tracing::warn!(name = %upload.name, %error, "Pyroscope refused a profile");
                    self.status.connected = true;
                    self.status.rejected += 1;
                    self.status.last_error = Some(error);
                    self.pop_upload();
                    self.dropped("rejected", 1);
                }
                Outcome::Failed(error) => {
                    metrics::counter!("huatuo_bamai_pyroscope_push_total", "result" => "error")
                        .increment(1);
                    tracing::debug!(%error, retry_in = ?self.backoff, "Pyroscope push failed");
                    self.status.connected = false;
                    self.status.failed += 1;
                    self.status.last_error = Some(error);
                    self.retry_at = Some(Instant::now() + self.backoff);
                    let max = Duration::from_millis(self.config.retry_backoff_max_ms);
                    self.backoff = (self.backoff * 2).min(max);
                    self.publish_status();
                    return;
                }
            }
            self.publish_status();
        }
    }

    /// The head upload is done: remove it, and its window once empty.
    fn pop_upload(&mut self) {
        if let Some(window) = self.queue.front_mut() {
            window.pop_front();
            if window.is_empty() {
                self.queue.pop_front();
            }
        }
    }

    fn publish_status(&self) {
        let mut status = self.status.clone();
        status.queued_windows = self.queue.len();
        metrics::gauge!("huatuo_bamai_pyroscope_queue_windows").set(self.queue.len() as f64);
        (self.report)(&status);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn push(
    client: &reqwest::Client,
    url: &str,
    config: &PyroscopeConfig,
    upload: &Upload,
) -> Outcome {
    let (body, content_type) = upload::multipart(&upload.pprof);
    let mut request = client
        .post(url)
        .query(&upload.query())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if !config.username.is_empty() {
        request = request.basic_auth(&config.username, Some(&config.password));
    }
    if !config.tenant_id.is_empty() {
        request = request.header("X-Scope-OrgID", &config.tenant_id);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(format!("{url}: {e}")),
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let text = response.text().await.unwrap_or_default();
    let error = format!(
        "{url}: HTTP {status}: {}",
        text.trim().chars().take(200).collect::<String>()
    );
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Outcome::Rejected(error)
    } else {
        Outcome::Failed(error)
    }
}
