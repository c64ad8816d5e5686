//! The agent's own metrics, rendered at scrape time from the supervisor's status and
//! `/proc/self`: per-actor state and restarts, process CPU seconds, RSS, open fds, start time.
//! Rendered by hand because they are float counters and snapshot enums the metrics facade
//! cannot express (its counters are integers).

use std::fmt::Write as _;

use crate::core::status::{AgentStatus, ChildState};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft `RLIMIT_NOFILE`.
    pub max_fds: u64,
    pub threads: u64,
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads `/proc/self/stat` and `/proc/self/fd`; missing pieces stay zero.
    pub fn read_self() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_btime(&s))
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let mut stats =
            parse_stat(&stat, ticks_per_second(), page_size(), boot_time).unwrap_or_default();
        stats.open_fds = open_fds;
        stats.max_fds = max_fds();
        stats
    }
}

fn max_fds() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Parses `/proc/<pid>/stat`; the comm field may contain spaces and parentheses.
pub fn parse_stat(text: &str, ticks: u64, page: u64, boot_time: u64) -> Option<ProcessStats> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state): field N is at index N - 3.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let rss_pages = field(24)?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks as f64,
        resident_bytes: rss_pages * page,
        virtual_bytes: vsize,
        open_fds: 0,
        max_fds: 0,
        threads,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / ticks as f64,
    })
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_set(labels: &[(String, String)], extra: &[(&str, &str)]) -> String {
    let parts: Vec<String> = extra
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .chain(labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders the self-metric families. `labels` are the global `host`/`region` labels.
pub fn render_self_metrics(
    labels: &[(String, String)],
    status: Option<&AgentStatus>,
    process: &ProcessStats,
) -> String {
    let mut out = String::new();
    let base = label_set(labels, &[]);
    let gauges: [(&str, &str, &str, f64); 6] = [
        (
            "huatuo_bamai_process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            process.cpu_seconds,
        ),
        (
            "huatuo_bamai_process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            process.resident_bytes as f64,
        ),
        (
            "huatuo_bamai_process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            process.virtual_bytes as f64,
        ),
        (
            "huatuo_bamai_process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            process.open_fds as f64,
        ),
        (
            "huatuo_bamai_process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            process.max_fds as f64,
        ),
        (
            "huatuo_bamai_process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            process.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in gauges {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name}{base} {value}");
    }
    family(
        &mut out,
        "huatuo_bamai_process_threads",
        "gauge",
        "Number of OS threads of the agent.",
    );
    let _ = writeln!(
        out,
        "huatuo_bamai_process_threads{base} {}",
        process.threads
    );

    let Some(status) = status else { return out };
    family(
        &mut out,
        "huatuo_bamai_up",
        "gauge",
        "1 when the agent is ready (every enabled probe running or inactive).",
    );
    let _ = writeln!(out, "huatuo_bamai_up{base} {}", u8::from(status.ready));
    family(
        &mut out,
        "huatuo_bamai_actor_state",
        "gauge",
        "Supervised actor state: 1 for the current state, 0 for the others.",
    );
    for actor in &status.actors {
        for state in ChildState::ALL {
            let value = u8::from(state == actor.state);
            let set = label_set(labels, &[("actor", &actor.name), ("state", state.as_str())]);
            let _ = writeln!(out, "huatuo_bamai_actor_state{set} {value}");
        }
    }
    family(
        &mut out,
        "huatuo_bamai_actor_restarts_total",
        "counter",
        "Restarts of a supervised actor since the agent started.",
    );
    for actor in &status.actors {
        let set = label_set(labels, &[("actor", &actor.name)]);
        let _ = writeln!(
            out,
            "huatuo_bamai_actor_restarts_total{set} {}",
            actor.restarts
        );
    }
    // Upstream's tracer lifecycle families (`tracing_status_*`).
    family(
        &mut out,
        "huatuo_bamai_tracing_status_hitcount",
        "gauge",
        "Runs of a tracer: its first start plus every restart.",
    );
    for actor in &status.actors {
        let set = label_set(labels, &[("tracing", &actor.name)]);
        let _ = writeln!(
            out,
            "huatuo_bamai_tracing_status_hitcount{set} {}",
            actor.runs()
        );
    }
    family(
        &mut out,
        "huatuo_bamai_tracing_status_running",
        "gauge",
        "Number of tracers running now.",
    );
    let running = status
        .actors
        .iter()
        .filter(|a| a.state == ChildState::Running)
        .count();
    let _ = writeln!(out, "huatuo_bamai_tracing_status_running{base} {running}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let stat = "4242 (huatuo (bamai)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 5000 123456789 2048 18446744073709551615";
        let s = parse_stat(stat, 100, 4096, 1_700_000_000).unwrap();
        assert_eq!(s.cpu_seconds, 4.0);
        assert_eq!(s.threads, 7);
        assert_eq!(s.virtual_bytes, 123_456_789);
        assert_eq!(s.resident_bytes, 2048 * 4096);
        assert_eq!(s.start_time_seconds, 1_700_000_050.0);
    }

    #[test]
    fn truncated_stat_is_none() {
        assert!(parse_stat("1 (x) S 1 2 3", 100, 4096, 0).is_none());
        assert!(parse_stat("garbage", 100, 4096, 0).is_none());
    }

    #[test]
    fn renders_labels_escaped() {
        let labels = vec![("host".to_string(), "a\"b".to_string())];
        let text = render_self_metrics(&labels, None, &ProcessStats::default());
        assert!(
            text.contains("huatuo_bamai_process_open_fds{host=\"a\\\"b\"} 0"),
            "{text}"
        );
    }
}
