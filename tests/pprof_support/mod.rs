//! Shared by tests/pprof.rs and tests/pyroscope*.rs: synthetic profile windows with known
//! stacks, and `go tool pprof` (Debian golang-go), the independent decoder of what we encode.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use huatuo_bamai::profiling::{Frame, Profile, ProfileKind, SampleLabels, StackSample};

pub const START_NS: u64 = 1_700_000_000_000_000_000;

fn frame(function: &str, module: &str, kernel: bool, address: u64) -> Frame {
    Frame {
        function: function.into(),
        module: Some(module.into()),
        kernel,
        address,
    }
}

pub fn busy_labels() -> SampleLabels {
    SampleLabels {
        pid: 100,
        comm: "busy".into(),
        container_id: Some("c0ffee00c0ffee00".into()),
        container_name: Some("web".into()),
        pod: Some("web-0".into()),
    }
}

pub fn host_labels() -> SampleLabels {
    SampleLabels {
        pid: 200,
        comm: "idler".into(),
        ..Default::default()
    }
}

fn stack(frames: Vec<Frame>, labels: SampleLabels, count: u64, value_ns: u64) -> StackSample {
    StackSample {
        frames,
        labels,
        count,
        value_ns,
    }
}

/// On-CPU at 100 Hz (10 ms a sample), 100 samples in a 10 s window:
/// busy (container web): spin_hot ← work ← busy_main 80, memcpy ← work ← busy_main 15;
/// idler (host): do_syscall_64 [k] ← poll ← idler_main 5.
pub fn cpu_window(start_ns: u64) -> Profile {
    let busy = "/usr/bin/busy";
    let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    Profile {
        kind: ProfileKind::Cpu,
        start_unix_ns: start_ns,
        duration_ns: 10_000_000_000,
        frequency_hz: 100,
        host: "node-1".into(),
        samples: vec![
            stack(
                vec![
                    frame("spin_hot", busy, false, 0x1010),
                    frame("work", busy, false, 0x1100),
                    frame("busy_main", busy, false, 0x1200),
                ],
                busy_labels(),
                80,
                800_000_000,
            ),
            stack(
                vec![
                    frame("memcpy", libc, false, 0x7f00_0000_1000),
                    frame("work", busy, false, 0x1108),
                    frame("busy_main", busy, false, 0x1200),
                ],
                busy_labels(),
                15,
                150_000_000,
            ),
            stack(
                vec![
                    frame("do_syscall_64", "[kernel]", true, 0xffff_ffff_8100_0000),
                    frame("poll", libc, false, 0x7f00_0000_2000),
                    frame("idler_main", "/usr/bin/idler", false, 0x4000),
                ],
                host_labels(),
                5,
                50_000_000,
            ),
        ],
    }
}

/// Off-CPU: busy blocked 2 s in pipe_read ← read ← busy_main (4 episodes), idler 0.5 s in
/// schedule ← nanosleep ← idler_main (1 episode).
pub fn offcpu_window(start_ns: u64) -> Profile {
    Profile {
        kind: ProfileKind::OffCpu,
        start_unix_ns: start_ns,
        duration_ns: 10_000_000_000,
        frequency_hz: 0,
        host: "node-1".into(),
        samples: vec![
            stack(
                vec![
                    frame("pipe_read", "[kernel]", true, 0xffff_ffff_8120_0000),
                    frame(
                        "read",
                        "/usr/lib/x86_64-linux-gnu/libc.so.6",
                        false,
                        0x7f00_0000_3000,
                    ),
                    frame("busy_main", "/usr/bin/busy", false, 0x1200),
                ],
                busy_labels(),
                4,
                2_000_000_000,
            ),
            stack(
                vec![
                    frame("schedule", "[kernel]", true, 0xffff_ffff_8130_0000),
                    frame(
                        "nanosleep",
                        "/usr/lib/x86_64-linux-gnu/libc.so.6",
                        false,
                        0x7f00_0000_4000,
                    ),
                    frame("idler_main", "/usr/bin/idler", false, 0x4000),
                ],
                host_labels(),
                1,
                500_000_000,
            ),
        ],
    }
}

/// `go tool pprof <args> <file>`; panics with its stderr when it fails or is missing.
pub fn go_pprof(args: &[&str], file: &Path) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let output = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", home.path())
        // Symbols are in the file: never look for binaries.
        .env("PPROF_BINARY_PATH", home.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `go tool pprof` ({e}): install golang-go (scripts/install-deps.sh test)")
        });
    assert!(
        output.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Rows of `-top` output as (name, flat, cum), values as printed (units stripped by the
/// caller's `-unit`).
pub fn top_rows(top: &str) -> Vec<(String, String, String)> {
    top.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() >= 6).then(|| {
                (
                    cols[5..].join(" "),
                    cols[0].to_string(),
                    cols[3].to_string(),
                )
            })
        })
        .collect()
}
