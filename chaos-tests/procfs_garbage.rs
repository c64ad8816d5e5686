//! Garbled procfs under `agent.procfs_root`: the agent reads a copy of the host's files, the
//! test corrupts them one at a time (binary junk, words for numbers, an empty file), and each corruption must be a counted error (`huatuo_bamai_collect_errors_total`)
//! with a log line naming the file, while the other
//! probes keep exporting and the agent keeps answering; restored, the probe recovers by itself.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{sample, Agent};
use crate::Scraper;

/// (probe, procfs file) pairs the test corrupts.
const FILES: [(&str, &str); 4] = [
    ("memory_vmstat", "vmstat"),
    ("memory_buddyinfo", "buddyinfo"),
    ("loadavg", "loadavg"),
    ("pressure", "pressure/memory"),
];

/// Copied from the host besides `FILES` (the pressure probe reads all three).
const ALSO_COPIED: [&str; 2] = ["pressure/cpu", "pressure/io"];

/// Each makes the file unreadable as what it claims to be.
fn corruptions(real: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "binary junk",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        (
            "words for numbers",
            real.replace(|c: char| c.is_ascii_digit(), "x").into_bytes(),
        ),
        ("empty", Vec::new()),
    ]
}

fn errors(agent: &Agent, probe: &str) -> f64 {
    sample(
        &agent.metrics(),
        "huatuo_bamai_collect_errors_total",
        &[("probe", probe)],
    )
    .unwrap_or(0.0)
}

fn success(agent: &Agent, probe: &str) -> Option<f64> {
    sample(
        &agent.metrics(),
        "huatuo_bamai_scrape_collector_success",
        &[("collector", probe)],
    )
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn garbled_procfs_files_are_counted_errors_and_the_probes_recover() {
    let fixture = tempfile::tempdir().expect("procfs fixture");
    let proc_dir = fixture.path();
    std::fs::create_dir(proc_dir.join("pressure")).expect("mkdir pressure");
    for file in FILES.iter().map(|(_, f)| *f).chain(ALSO_COPIED) {
        std::fs::copy(Path::new("/proc").join(file), proc_dir.join(file))
            .unwrap_or_else(|e| panic!("copy /proc/{file}: {e}"));
    }
    let probes: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
    let agent = Agent::start_with(
        &probes,
        &format!("[agent]\nprocfs_root = \"{}\"\n", proc_dir.display()),
    );
    for probe in &probes {
        wait(&format!("{probe} healthy"), Duration::from_secs(10), || {
            success(&agent, probe) == Some(1.0)
        });
    }
    let scraper = Scraper::start(agent.port);
    let mut missed = Vec::new();
    for (probe, file) in FILES {
        let path = proc_dir.join(file);
        let real = std::fs::read_to_string(&path).expect("fixture");
        for (kind, bytes) in corruptions(&real) {
            let before = errors(&agent, probe);
            std::fs::write(&path, &bytes).expect("corrupt");
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut counted = false;
            while Instant::now() < deadline {
                if errors(&agent, probe) > before {
                    counted = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !counted {
                missed.push(format!("{probe} /{file}: {kind}"));
            }
            // Every other probe keeps exporting meanwhile.
            for other in probes.iter().filter(|p| **p != probe) {
                assert_eq!(
                    success(&agent, other),
                    Some(1.0),
                    "{other} while {file} is garbled"
                );
            }
            assert_eq!(agent.actor_state(probe), "running", "{probe} after {kind}");
        }
        std::fs::write(&path, real).expect("restore");
        wait(&format!("{probe} recovers"), Duration::from_secs(5), || {
            success(&agent, probe) == Some(1.0)
        });
        if !agent.log().contains(&path.display().to_string()) {
            missed.push(format!(
                "{probe} /{file}: no log line names {}",
                path.display()
            ));
        }
    }
    let (ok, failed) = scraper.finish();
    assert_eq!(failed, 0, "/metrics failed {failed} times ({ok} ok)");
    assert!(
        missed.is_empty(),
        "corruptions not counted as errors: {missed:#?}"
    );
}
