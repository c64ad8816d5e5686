//! dload's decision: a pure function of the D-load average and the threshold.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Capture,
    Quiet,
}

/// Upstream fires when the D-load average is above the threshold (strictly).
pub fn should_capture(dload_avg: f64, threshold: f64) -> Decision {
    if dload_avg > threshold {
        Decision::Capture
    } else {
        Decision::Quiet
    }
}
