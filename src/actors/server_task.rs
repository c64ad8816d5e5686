//! A listener loop owned by a service actor: cancelled and awaited (with a grace period) when
//! the actor stops, so a restarted actor never races its predecessor for the socket.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct ServerTask {
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServerTask {
    /// Spawns `serve(token)`; the future must return once the token is cancelled.
    pub fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(shutdown.clone()));
        Self {
            shutdown,
            task: Some(task),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Cancels the loop and waits up to `grace` for in-flight work to finish.
    pub async fn stop(&mut self, name: &str, grace: Duration) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!(server = name, "did not stop within {grace:?}");
            }
        }
    }
}

impl Drop for ServerTask {
    /// A killed actor skips `post_stop` but drops its state: the listener must still go, or the
    /// restarted actor could not bind its address.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
