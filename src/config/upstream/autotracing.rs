//! Upstream's `[AutoTracing.*]` keys onto our trigger probes (`probes.cpuidle`, `cpusys`,
//! `dload`, `iotracing`, `memburst`): thresholds keep their units (percent, load, ms, counts),
//! `Interval` (s) becomes `interval_ms`, `IntervalTracing` (s, quiet time after a capture)
//! `cooldown_secs`, `RunTracingToolTimeout` (s) `capture_secs`.

use serde_json::json;

use super::{ImportError, Importer};

/// Upstream's MB/s (MiB) to our bytes per second.
const MIB: i64 = 1 << 20;

impl Importer<'_> {
    /// Maps one `AutoTracing.*` key; false when it is none of them.
    pub(super) fn autotracing_key(
        &mut self,
        key: &str,
        value: &toml::Value,
    ) -> Result<bool, ImportError> {
        let Some(rest) = key.strip_prefix("AutoTracing.") else {
            return Ok(false);
        };
        let Some((section, name)) = rest.split_once('.') else {
            if rest == "IssuesList" {
                self.unsupported(
                    key,
                    "known-issue matching of AutoTracing stacks is not implemented \
                     (dload documents keep known_issue empty)",
                );
                return Ok(true);
            }
            return Ok(false);
        };
        let probe = match section {
            "CPUIdle" => "cpuidle",
            "CPUSys" => "cpusys",
            "Dload" => "dload",
            "IOTracing" => "iotracing",
            "MemoryBurst" => "memburst",
            _ => return Ok(false),
        };
        let ours = match (probe, name) {
            (_, "Interval") => {
                let secs = self.integer(key, value, 86_400)?;
                if secs == 0 {
                    return Err(self.bad(key, "must be at least 1 s"));
                }
                self.set(
                    &format!("probes.{probe}.interval_ms"),
                    json!(secs * 1000),
                    key,
                    value,
                );
                return Ok(true);
            }
            (_, "IntervalTracing") => "cooldown_secs",
            ("cpuidle" | "cpusys" | "iotracing", "RunTracingToolTimeout") => "capture_secs",
            ("cpuidle", "UserThreshold") => "user_percent",
            ("cpuidle", "DeltaUserThreshold") => "user_percent_delta",
            ("cpuidle" | "cpusys", "SysThreshold") => "system_percent",
            ("cpuidle" | "cpusys", "DeltaSysThreshold") => "system_percent_delta",
            ("cpuidle", "UsageThreshold") => "total_percent",
            ("cpuidle", "DeltaUsageThreshold") => "total_percent_delta",
            ("cpuidle", filter) if filter.starts_with("Filter") => {
                self.unsupported(
                    key,
                    "cpuidle watches every normal container; container filters by namespace, \
                     hostname or QoS are not implemented",
                );
                return Ok(true);
            }
            ("dload", "ThresholdLoad") => "threshold",
            ("dload", "EnableDebug") => {
                self.boolean(key, value)?;
                self.note(
                    key,
                    "no debug mode: every dload document carries the stacks",
                );
                return Ok(true);
            }
            ("iotracing", "UtilThreshold") => "util_threshold",
            ("iotracing", "AwaitThreshold") => "await_threshold_ms",
            ("iotracing", "MaxProcDump") => "max_processes",
            ("iotracing", "MaxFilesPerProcDump") => "max_files_per_process",
            ("iotracing", "RbpsThreshold" | "WbpsThreshold") => {
                let mb = self.integer(key, value, i64::MAX / MIB)?;
                let ours = if name == "RbpsThreshold" {
                    "nvme_read_bps_threshold"
                } else {
                    "nvme_write_bps_threshold"
                };
                self.set(
                    &format!("probes.iotracing.{ours}"),
                    json!((mb * MIB) as f64),
                    key,
                    value,
                );
                return Ok(true);
            }
            ("memburst", "DeltaMemoryBurst") => {
                // Upstream: grown by this percent over the window; ours: the same as a ratio.
                let percent = self.integer(key, value, 100_000)?;
                let ratio = percent as f64 / 100.0;
                self.set("probes.memburst.burst_ratio", json!(ratio), key, value);
                return Ok(true);
            }
            ("memburst", "DeltaAnonThreshold") => "anon_percent_of_total",
            ("memburst", "SlidingWindowLength") => "window",
            ("memburst", "DumpProcessMaxNum") => "top_processes",
            _ => return Ok(false),
        };
        let n = self.integer(key, value, i64::from(u32::MAX))?;
        // Counts and seconds are integers here; thresholds are numbers (upstream writes 45, we 45.0).
        let counted = [
            "cooldown_secs",
            "capture_secs",
            "max_processes",
            "max_files_per_process",
            "window",
            "top_processes",
        ];
        let ours_value = if counted.contains(&ours) {
            json!(n)
        } else {
            json!(n as f64)
        };
        self.set(&format!("probes.{probe}.{ours}"), ours_value, key, value);
        Ok(true)
    }
}
