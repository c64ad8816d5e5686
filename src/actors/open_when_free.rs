//! Opening a file that an earlier handle in this process may still hold for a moment: a killed
//! predecessor actor's task is aborted but not yet dropped, or a query still reads. The open runs
//! off the async threads and is retried briefly while the file is "in use", instead of failing
//! the actor into a restart loop.

use std::time::Duration;

/// How long an open waits for a predecessor's handle to let go.
const OPEN_RETRY: Duration = Duration::from_secs(3);
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Runs `open` on a blocking thread until it succeeds, fails for another reason than
/// `in_use`, or [`OPEN_RETRY`] has passed. The outer `Err` is a panic of the open.
pub async fn open_when_free<T, E, F>(
    open: F,
    in_use: fn(&E) -> bool,
) -> Result<Result<T, E>, String>
where
    F: Fn() -> Result<T, E> + Clone + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let deadline = tokio::time::Instant::now() + OPEN_RETRY;
    loop {
        let opened = tokio::task::spawn_blocking(open.clone())
            .await
            .map_err(|e| format!("opening panicked: {e}"))?;
        match opened {
            Err(e) if in_use(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(RETRY_EVERY).await;
            }
            other => return Ok(other),
        }
    }
}
