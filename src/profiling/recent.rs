//! The last profile windows, kept in memory for queries (the querier endpoints Grafana's
//! Pyroscope datasource reads). Bounded twice: by count and by an estimate of the bytes the
//! windows hold, so 500 distinct deep stacks per window cannot grow the agent past its memory
//! budget; the oldest go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::Profile;

/// Windows kept at most: one hour of 10 s on-CPU and off-CPU windows.
pub const MAX_WINDOWS: usize = 720;
/// Estimated bytes kept at most.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

pub struct RecentProfiles {
    max_windows: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    windows: VecDeque<(Arc<Profile>, usize)>,
    bytes: usize,
}

impl Default for RecentProfiles {
    fn default() -> Self {
        Self::new(MAX_WINDOWS, MAX_BYTES)
    }
}

/// What a window costs in memory, roughly: its frames' strings and fixed parts.
pub fn estimated_bytes(profile: &Profile) -> usize {
    let frame = std::mem::size_of::<super::Frame>();
    let sample = std::mem::size_of::<super::StackSample>();
    profile
        .samples
        .iter()
        .map(|s| {
            sample
                + s.labels.comm.len()
                + s.frames
                    .iter()
                    .map(|f| frame + f.function.len() + f.module.as_ref().map_or(0, String::len))
                    .sum::<usize>()
        })
        .sum::<usize>()
        + std::mem::size_of::<Profile>()
}

impl RecentProfiles {
    pub fn new(max_windows: usize, max_bytes: usize) -> Self {
        Self {
            max_windows: max_windows.max(1),
            max_bytes,
            inner: Mutex::default(),
        }
    }

    pub fn push(&self, profile: Arc<Profile>) {
        let size = estimated_bytes(&profile);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.bytes += size;
        inner.windows.push_back((profile, size));
        while inner.windows.len() > self.max_windows
            || (inner.bytes > self.max_bytes && inner.windows.len() > 1)
        {
            if let Some((_, size)) = inner.windows.pop_front() {
                inner.bytes -= size;
            }
        }
    }

    /// The windows kept, oldest first.
    pub fn windows(&self) -> Vec<Arc<Profile>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.windows.iter().map(|(p, _)| p.clone()).collect()
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::{Frame, ProfileKind, SampleLabels, StackSample};

    fn window(start: u64, stacks: usize) -> Arc<Profile> {
        Arc::new(Profile {
            kind: ProfileKind::Cpu,
            start_unix_ns: start,
            duration_ns: 1,
            frequency_hz: 19,
            host: "h".into(),
            samples: (0..stacks)
                .map(|i| StackSample {
                    frames: vec![Frame {
                        function: format!("f{i}"),
                        module: Some("/bin/x".into()),
                        kernel: false,
                        address: i as u64,
                    }],
                    labels: SampleLabels::default(),
                    count: 1,
                    value_ns: 1,
                })
                .collect(),
        })
    }

    #[test]
    fn the_oldest_go_first_by_count_and_by_bytes() {
        let ring = RecentProfiles::new(3, usize::MAX);
        for start in 0..5 {
            ring.push(window(start, 1));
        }
        let starts: Vec<u64> = ring.windows().iter().map(|p| p.start_unix_ns).collect();
        assert_eq!(starts, [2, 3, 4]);

        let one = estimated_bytes(&window(0, 100));
        let ring = RecentProfiles::new(100, one * 2 + one / 2);
        for start in 0..4 {
            ring.push(window(start, 100));
        }
        let starts: Vec<u64> = ring.windows().iter().map(|p| p.start_unix_ns).collect();
        assert_eq!(starts, [2, 3]);
        assert!(ring.bytes() <= one * 2 + one / 2);
    }
}
