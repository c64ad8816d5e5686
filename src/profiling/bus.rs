//! The profile bus: the profile probe publishes every finished window; consumers (the Pyroscope
//! pusher, the querier's recent-window ring) subscribe. Lagging consumers lose the oldest
//! windows (tokio broadcast semantics), never block the probe.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Profile;

/// Windows a slow subscriber may fall behind before it loses the oldest.
const CAPACITY: usize = 64;

#[derive(Clone)]
pub struct ProfileBus {
    tx: broadcast::Sender<Arc<Profile>>,
}

impl Default for ProfileBus {
    fn default() -> Self {
        Self::new()
    }
}

impl ProfileBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx }
    }

    /// Publishes a window; returns how many subscribers will see it (0 when nobody listens).
    pub fn publish(&self, profile: Arc<Profile>) -> usize {
        self.tx.send(profile).unwrap_or(0)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Profile>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::ProfileKind;

    #[tokio::test]
    async fn subscribers_see_windows_published_after_they_subscribed() {
        let bus = ProfileBus::new();
        let window = |start| {
            Arc::new(Profile {
                kind: ProfileKind::Cpu,
                start_unix_ns: start,
                duration_ns: 1,
                frequency_hz: 19,
                host: "h".into(),
                samples: Vec::new(),
            })
        };
        assert_eq!(bus.publish(window(1)), 0);
        let mut rx = bus.subscribe();
        assert_eq!(bus.publish(window(2)), 1);
        assert_eq!(rx.recv().await.map(|p| p.start_unix_ns).ok(), Some(2));
    }
}
