//! The control socket against the real binary: good commands, garbage, bad `set` values and
//! broken reloads leave the running configuration and the socket intact.

mod common;

use std::time::Duration;

use common::{sample, Agent};

fn reply(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}"))
}

#[test]
fn socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let agent = Agent::start(&["loadavg"]);
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn status_lists_every_actor_as_a_table() {
    let agent = Agent::start(&["loadavg"]);
    let out = agent.ctl(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.lines().next().unwrap().contains("ready=true"),
        "{table}"
    );
    for (actor, state) in [
        ("loadavg", "running"),
        ("softirq", "disabled"),
        ("http", "running"),
        ("control", "running"),
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(actor) && l.contains(state)),
            "{actor} {state} missing:\n{table}"
        );
    }
}

#[test]
fn garbage_lines_get_errors_and_the_socket_stays_up() {
    let agent = Agent::start(&["loadavg"]);
    let replies = agent.raw_control(&[
        "frobnicate now",
        "{\"command\": 12}",
        "enable",
        "enable nosuchprobe",
        "\u{1}\u{2}\u{3}",
        "status",
    ]);
    for (i, expect) in [
        "unknown command",
        "malformed JSON",
        "takes NAME",
        "unknown probe `nosuchprobe`",
        "unknown command",
    ]
    .iter()
    .enumerate()
    {
        let r = reply(&replies[i]);
        assert_eq!(r["ok"], false, "{}", replies[i]);
        assert!(
            r["error"].as_str().unwrap().contains(expect),
            "{} !~ {expect}",
            replies[i]
        );
    }
    assert_eq!(
        reply(&replies[5])["ok"],
        true,
        "status after garbage on the same connection"
    );

    // An over-long line is refused and that connection closed; new connections still work.
    let long = "x".repeat(100 * 1024);
    let replies = agent.raw_control(&[&long]);
    assert!(reply(&replies[0])["error"]
        .as_str()
        .unwrap()
        .contains("longer than"));
    assert_eq!(reply(&agent.raw_control(&["status"])[0])["ok"], true);
}

#[test]
fn set_with_bad_value_keeps_old_config() {
    let agent = Agent::start(&["loadavg"]);
    for (key, value, expect) in [
        ("probes.loadavg.interval_ms", "soon", "interval_ms"),
        ("probes.loadavg.interval_ms", "5", "at least 100"),
        ("probes.loadavg.bogus", "1", "bogus"),
        ("http.listen", "127.0.0.1:1", "restart"),
    ] {
        let out = agent.ctl(&["set", key, value]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{key}={value} accepted: {text}");
        assert!(text.contains(expect), "{key}={value}: {text}");
    }
    // The probe kept running, untouched.
    assert_eq!(agent.actor_state("loadavg"), "running");
    let restarts = sample(
        &agent.metrics(),
        "huatuo_bamai_actor_restarts_total",
        &[("actor", "loadavg")],
    );
    assert_eq!(restarts, Some(0.0));

    // A good value restarts only that probe.
    let out = agent.ctl(&["set", "probes.loadavg.interval_ms", "300"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("restarted loadavg"),
        "{text}"
    );
    agent.wait_state("loadavg", "running", Duration::from_secs(5));
}

#[test]
fn disable_and_enable_live() {
    let agent = Agent::start(&["loadavg"]);
    let out = agent.ctl(&["disable", "loadavg"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped loadavg"));
    assert_eq!(agent.actor_state("loadavg"), "disabled");
    let out = agent.ctl(&["enable", "loadavg"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("started loadavg"));
    agent.wait_state("loadavg", "running", Duration::from_secs(5));
}

#[test]
fn reload_applies_file_changes_and_refuses_broken_files() {
    let agent = Agent::start(&["loadavg"]);
    let original = std::fs::read_to_string(&agent.config_path).unwrap();

    std::fs::write(&agent.config_path, format!("{original}\n[oops\n")).unwrap();
    let out = agent.ctl(&["reload"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("running configuration kept"),
        "{text}"
    );
    assert_eq!(agent.actor_state("loadavg"), "running");

    let changed = original.replace(
        "[probes.loadavg]\nenabled = true\ninterval_ms = 200",
        "[probes.loadavg]\nenabled = true\ninterval_ms = 400",
    );
    assert_ne!(changed, original);
    std::fs::write(&agent.config_path, changed).unwrap();
    let out = agent.ctl(&["reload"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("restarted loadavg"),
        "{text}"
    );
    assert!(
        !text.contains("softirq"),
        "only the changed probe restarts: {text}"
    );
}
