//! pprof files checked by an independent decoder, `go tool pprof`: the functions, their
//! flat/cum values, sample types and labels are what the synthetic windows hold.

mod pprof_support;

use huatuo_bamai::profiling::pprof;
use pprof_support::{cpu_window, go_pprof, offcpu_window, top_rows, START_NS};

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write pprof");
    path
}

#[test]
fn go_tool_pprof_top_lists_cpu_functions_with_their_flat_and_cum() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "cpu.pprof", &pprof::encode(&cpu_window(START_NS)));
    let top = go_pprof(&["-top", "-sample_index=samples"], &file);
    let rows = top_rows(&top);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .map(|r| (r.1.as_str(), r.2.as_str()))
            .unwrap_or_else(|| panic!("{name} not in -top:\n{top}"))
    };
    assert_eq!(row("spin_hot"), ("80", "80"), "{top}");
    assert_eq!(row("memcpy"), ("15", "15"), "{top}");
    assert_eq!(row("work"), ("0", "95"), "{top}");
    assert_eq!(row("busy_main"), ("0", "95"), "{top}");
    assert_eq!(row("do_syscall_64"), ("5", "5"), "{top}");
    assert_eq!(row("idler_main"), ("0", "5"), "{top}");
    // The hottest function comes first.
    assert_eq!(rows[0].0, "spin_hot", "{top}");

    // The default sample type is cpu time: 80 samples × 10 ms.
    let top = go_pprof(&["-top", "-unit=ms"], &file);
    assert!(top.contains("Type: cpu"), "{top}");
    let rows = top_rows(&top);
    let spin = rows.iter().find(|r| r.0 == "spin_hot").expect("spin_hot");
    assert_eq!(spin.1, "800ms", "{top}");
    assert!(top.contains("Duration: 10s"), "{top}");
}

#[test]
fn go_tool_pprof_reads_pid_comm_and_container_labels() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "cpu.pprof", &pprof::encode(&cpu_window(START_NS)));
    let tags = go_pprof(&["-tags", "-sample_index=samples"], &file);
    for expected in [
        "comm:",
        "busy",
        "idler",
        "container_id:",
        "c0ffee00c0ffee00",
        "container_name:",
        "web",
        "pod:",
        "web-0",
        "pid:",
        "100",
        "200",
    ] {
        assert!(
            tags.contains(expected),
            "{expected} missing from -tags:\n{tags}"
        );
    }
    // Focusing on the container keeps exactly its 95 samples.
    let top = go_pprof(
        &[
            "-top",
            "-sample_index=samples",
            "-tagfocus=container_name=web",
        ],
        &file,
    );
    let rows = top_rows(&top);
    assert!(rows.iter().any(|r| r.0 == "spin_hot"), "{top}");
    assert!(!rows.iter().any(|r| r.0 == "idler_main"), "{top}");
    let flat: u64 = rows
        .iter()
        .map(|r| r.1.parse::<u64>().expect("a count"))
        .sum();
    assert_eq!(flat, 95, "{top}");
    // pid is a numeric label: a range focus works.
    let top = go_pprof(
        &["-top", "-sample_index=samples", "-tagfocus=pid=150:250"],
        &file,
    );
    let rows = top_rows(&top);
    assert_eq!(
        rows.iter()
            .map(|r| r.0.as_str())
            .filter(|n| *n == "do_syscall_64")
            .count(),
        1,
        "{top}"
    );
    assert!(!rows.iter().any(|r| r.0 == "spin_hot"), "{top}");
}

#[test]
fn go_tool_pprof_raw_shows_ids_from_one_and_offcpu_sample_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "offcpu.pprof",
        &pprof::encode(&offcpu_window(START_NS)),
    );
    let raw = go_pprof(&["-raw"], &file);
    assert!(raw.contains("PeriodType: offcpu nanoseconds"), "{raw}");
    assert!(raw.contains("offcpu/nanoseconds"), "{raw}");
    assert!(raw.contains("2000000000"), "{raw}");
    // Locations and mappings are numbered from 1; no id 0 anywhere.
    let section = |name: &str| -> Vec<String> {
        raw.split(&format!("{name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {name} in -raw:\n{raw}"))
            .lines()
            .take_while(|l| {
                l.trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
            .map(|l| l.trim().to_string())
            .collect()
    };
    let locations = section("Locations");
    assert!(locations[0].starts_with("1: "), "{raw}");
    assert!(locations.iter().all(|l| !l.starts_with("0: ")), "{raw}");
    assert!(locations.iter().any(|l| l.contains("pipe_read")), "{raw}");
    let mappings = section("Mappings");
    assert!(mappings[0].starts_with("1: "), "{raw}");
    assert!(mappings.iter().any(|m| m.contains("[kernel]")), "{raw}");
    let top = go_pprof(&["-top", "-unit=ms"], &file);
    let rows = top_rows(&top);
    let pipe = rows.iter().find(|r| r.0 == "pipe_read").expect("pipe_read");
    assert_eq!(pipe.1, "2000ms", "{top}");
}
