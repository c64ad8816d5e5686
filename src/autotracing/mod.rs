//! AutoTracing's pure pieces: each trigger's decision function over its own window of samples,
//! and the cooldown that keeps one capture per kind (globally, and per container) from repeating.
//! No I/O and no actors here, so every rule is unit-testable on synthetic series; the trigger
//! actors (one per trigger) read the signal, feed these functions and ask for a capture.
//! Upstream: huatuo `core/autotracing/` (docs/reference upstream-huatuo.md §4.2).

pub mod cooldown;
pub mod cpuidle;
pub mod cpusys;
pub mod memburst;

pub use cooldown::Cooldown;

/// The `tracer_type` of every AutoTracing document (upstream's value).
pub const TRACER_TYPE: &str = "autotracing";

/// Upstream's default cooldown between two captures of one trigger (`IntervalTracing`, 1800 s).
pub const DEFAULT_COOLDOWN_SECS: u64 = 1800;
