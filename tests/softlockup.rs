//! Root tests of the softlockup probe on the real kernel log. A real soft lockup cannot be
//! provoked safely (it needs a CPU stuck in the kernel for 20 s and more), so the detection path
//! is provoked by writing a report line in the kernel's shape to /dev/kmsg: the default probe,
//! which counts only the kernel's own records, must ignore it (user space writes get facility
//! `user`), and one with `kernel_messages_only = false` must count it and store its document
//! through a real agent (counter in /metrics, document in /v1/events with upstream's shape).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use huatuo_bamai::core::Probe;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::softlockup::{SoftlockupConfig, SoftlockupProbe};

use common::Agent;

/// Both tests write report lines to the one kernel log the other reads: one at a time, so the
/// agent's exact count is not raised by the other test's line.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root(test: &str) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("HUATUO_REQUIRE_BPF").is_some() {
        panic!("{test}: root required (HUATUO_REQUIRE_BPF set)");
    }
    eprintln!("SKIP {test}: not root");
    false
}

/// A report line no other test or kernel writes: CPU, duration, comm and pid of our own.
fn forged_report(cpu: u32, pid: u32) -> String {
    format!("<1>watchdog: BUG: soft lockup - CPU#{cpu} stuck for 37s! [huatuo-slt:{pid}]\n")
}

fn write_kmsg(lines: &[&str]) {
    let mut kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg for writing");
    for line in lines {
        // One write is one record.
        kmsg.write_all(line.as_bytes()).expect("write /dev/kmsg");
    }
}

fn counter(set: &MetricSet, name: &str) -> f64 {
    set.families
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
        .unwrap_or(f64::NAN)
}

#[test]
fn a_written_report_counts_only_when_user_space_lines_are_allowed() {
    if !root("softlockup_kmsg_in_process") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = common::host_probe_context();
    let mut strict = SoftlockupProbe::start(&SoftlockupConfig::default(), &ctx).expect("start");
    let open_settings = SoftlockupConfig {
        kernel_messages_only: false,
        stack_window_ms: 300,
        report_backoff_secs: 0,
        report_backoff_max_secs: 0,
        ..Default::default()
    };
    let mut open = SoftlockupProbe::start(&open_settings, &ctx).expect("start");
    let pid = std::process::id();
    let report = forged_report(1, pid);
    write_kmsg(&[&report, "<4>huatuo-slt: a line after the report\n"]);

    let (documents, set) = common::collect_until(&mut open, &ctx, Duration::from_secs(5), |d| {
        d.iter().any(|d| d.tracer_data["pid"] == pid)
    });
    let mine: Vec<_> = documents
        .iter()
        .filter(|d| d.tracer_data["pid"] == pid)
        .collect();
    assert_eq!(mine.len(), 1, "{documents:#?}");
    let data = &mine[0].tracer_data;
    assert_eq!(data["cpu"], 1);
    assert_eq!(data["comm"], "huatuo-slt");
    assert_eq!(data["stuck_secs"], 37);
    let stack = data["cpus_stack"].as_str().expect("cpus_stack is text");
    assert!(
        stack.contains("BUG: soft lockup - CPU#1 stuck for 37s! [huatuo-slt:")
            && stack.contains("huatuo-slt: a line after the report"),
        "the report and the log after it: {stack}"
    );
    assert!(counter(&set, "huatuo_bamai_softlockup_total") >= 1.0);
    common::upstream::assert_upstream_shape(mine[0]);

    let mut set = MetricSet::default();
    strict.collect(&mut set).expect("collect");
    assert_eq!(
        counter(&set, "huatuo_bamai_softlockup_total"),
        0.0,
        "a user-space line must not count by default"
    );
}

#[test]
fn the_agent_counts_and_stores_a_written_report() {
    if !root("softlockup_kmsg_agent") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut agent = Agent::start_with(
        &["softlockup"],
        "[probes.softlockup]\nkernel_messages_only = false\nstack_window_ms = 200\n",
    );
    agent.wait_ready(Duration::from_secs(20));
    let before =
        common::sample(&agent.metrics(), "huatuo_bamai_softlockup_total", &[]).unwrap_or(-1.0);
    assert_eq!(before, 0.0, "a fresh agent has seen no report");
    // A pid of ours no other test writes (the agent's, as the probe cannot tell).
    let pid = agent.pid();
    write_kmsg(&[&forged_report(0, pid)]);

    let deadline = Instant::now() + Duration::from_secs(10);
    let document = loop {
        let (status, body) = agent
            .get("/v1/events?tracer_name=softlockup&limit=100")
            .expect("GET /v1/events");
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).expect("events JSON");
        let found = reply["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["tracer_data"]["pid"] == pid)
            .cloned();
        if let Some(document) = found {
            break document;
        }
        assert!(Instant::now() < deadline, "no softlockup document: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let stored: huatuo_bamai::events::EventDocument =
        serde_json::from_value(document.clone()).expect("a stored document reads back");
    common::upstream::assert_upstream_shape(&stored);
    assert_eq!(document["tracer_name"], "softlockup");
    assert_eq!(document["tracer_data"]["cpu"], 0);
    assert_eq!(document["tracer_data"]["comm"], "huatuo-slt");
    assert_eq!(
        common::sample(&agent.metrics(), "huatuo_bamai_softlockup_total", &[]),
        Some(1.0)
    );
}
