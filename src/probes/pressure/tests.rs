use super::*;
use crate::probes::testutil::{
    assert_lines, collect_text, context, context_at, copy_fixture, expected, real_proc_context,
    samples,
};

fn probe(ctx: &ProbeContext) -> PressureProbe {
    PressureProbe::start(&PressureConfig::default(), ctx).unwrap()
}

const DOCKER_V2: &str = "sys/fs/cgroup/system.slice/docker-d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope";
const CRIO_V2: &str = "sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod66666666_7777_8888_9999_000000000000.slice/crio-c210cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.scope";

#[test]
fn exports_host_and_container_pressure_v2() {
    let mut p = probe(&context("cgroup-v2"));
    let text = collect_text(&mut p);
    assert_lines(&text, &expected("pressure-v2.txt"));
    // 12 host series, and per container 12 (crio's cpu.pressure has no full line: 10).
    assert_eq!(samples(&text).len(), 12 + 12 * 3 + 10, "{text}");
}

#[test]
fn exports_host_and_hybrid_unified_container_pressure_v1() {
    let mut p = probe(&context("cgroup-v1"));
    let text = collect_text(&mut p);
    assert_lines(&text, &expected("pressure-v1.txt"));
    // Only the container mirrored below sys/fs/cgroup/unified has PSI files; the others are
    // skipped silently.
    assert_eq!(samples(&text).len(), 12 + 12, "{text}");
    assert!(
        !text.contains("c0ffee") && !text.contains("be57ef"),
        "{text}"
    );
}

#[test]
fn v1_host_without_unified_mount_exports_host_only() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup/unified")).unwrap();
    let ctx = context_at(dir.path());
    assert!(container_psi_dir(&ctx.cgroup, "/docker/x").is_none());
    let text = collect_text(&mut probe(&ctx));
    assert_eq!(samples(&text).len(), 12, "{text}");
    assert!(!text.contains("container"), "{text}");
}

#[test]
fn totals_follow_the_files_between_collections() {
    let dir = copy_fixture("cgroup-v2");
    let mut p = probe(&context_at(dir.path()));
    collect_text(&mut p);
    std::fs::write(
        dir.path().join("proc/pressure/io"),
        "some avg10=7.5 avg60=1.00 avg300=0.50 total=25000000\nfull avg10=100.00 avg60=0.00 avg300=0.00 total=18446744073709\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(DOCKER_V2).join("memory.pressure"),
        "some avg10=42.00 avg60=0.00 avg300=0.00 total=3000001\nfull avg10=0.05 avg60=0.00 avg300=0.00 total=1\n",
    )
    .unwrap();
    let text = collect_text(&mut p);
    assert_lines(
        &text,
        "huatuo_bamai_pressure_io_some_avg10 0.075\n\
         huatuo_bamai_pressure_io_some_seconds_total 25\n\
         huatuo_bamai_pressure_io_full_avg10 1\n\
         huatuo_bamai_pressure_io_full_seconds_total 18446744.073709\n\
         huatuo_bamai_pressure_container_memory_some_avg10{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"} 0.42\n\
         huatuo_bamai_pressure_container_memory_some_seconds_total{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"} 3.000001\n\
         huatuo_bamai_pressure_container_memory_full_seconds_total{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"} 0.000001",
    );
}

#[test]
fn malformed_and_missing_files_skip_only_that_source() {
    let dir = copy_fixture("cgroup-v2");
    std::fs::write(dir.path().join("proc/pressure/cpu"), "garbage\n").unwrap();
    std::fs::write(
        dir.path().join("proc/pressure/memory"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 tot",
    )
    .unwrap();
    std::fs::write(dir.path().join(CRIO_V2).join("io.pressure"), "").unwrap();
    std::fs::remove_file(dir.path().join(DOCKER_V2).join("cpu.pressure")).unwrap();
    let mut p = probe(&context_at(dir.path()));
    let text = collect_text(&mut p);
    assert!(!text.contains("huatuo_bamai_pressure_cpu_"), "{text}");
    assert!(!text.contains("huatuo_bamai_pressure_memory_"), "{text}");
    assert_lines(
        &text,
        "huatuo_bamai_pressure_io_some_seconds_total 19.670208\n\
         huatuo_bamai_pressure_container_cpu_some_seconds_total{container_host=\"c0ffeebbbbbb\",container_name=\"c0ffeebbbbbb\",container_type=\"normal\",container_level=\"guaranteed\",container_hostnamespace=\"\"} 987.654321\n\
         huatuo_bamai_pressure_container_memory_some_avg10{container_host=\"d0cce7aaaaaa\",container_name=\"d0cce7aaaaaa\",container_type=\"normal\",container_level=\"unknown\",container_hostnamespace=\"\"} 0.0025",
    );
    let io_containers = text
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_pressure_container_io_some_avg10{"))
        .count();
    assert_eq!(io_containers, 3, "{text}");
    let cpu_containers = text
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_pressure_container_cpu_some_avg10{"))
        .count();
    assert_eq!(cpu_containers, 3, "{text}");
    // A removed container directory (container gone between scan and read) is no error.
    std::fs::remove_dir_all(dir.path().join(CRIO_V2)).unwrap();
    collect_text(&mut p);
}

#[test]
fn nothing_readable_is_an_error_and_no_psi_is_unsupported() {
    let dir = copy_fixture("cgroup-v1");
    std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup/unified")).unwrap();
    let ctx = context_at(dir.path());
    let mut p = probe(&ctx);
    for r in RESOURCES {
        std::fs::write(dir.path().join("proc/pressure").join(r), "x").unwrap();
    }
    let err = p.collect(&mut MetricSet::default()).unwrap_err();
    assert!(err.to_string().contains("pressure"), "{err}");
    std::fs::remove_dir_all(dir.path().join("proc/pressure")).unwrap();
    let err = PressureProbe::start(&PressureConfig::default(), &ctx)
        .err()
        .unwrap();
    assert!(err.is_unsupported(), "{err}");
}

#[test]
fn parses_psi_lines() {
    let lines = parse_psi(
        "some avg10=0.62 avg60=1.91 avg300=5.13 total=176740478\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )
    .unwrap();
    assert_eq!(
        lines,
        vec![
            PsiLine {
                stall: Stall::Some,
                avg10: 0.0062,
                total_us: 176740478
            },
            PsiLine {
                stall: Stall::Full,
                avg10: 0.0,
                total_us: 0
            },
        ]
    );
    assert_eq!(parse_psi("").unwrap_err(), "no some/full line");
    assert_eq!(
        parse_psi("half avg10=0.00 total=0").unwrap_err(),
        "line starts with `half`, not some/full"
    );
    assert_eq!(
        parse_psi("some avg10=0.00 avg60=0.00").unwrap_err(),
        "some line: no total"
    );
    assert_eq!(
        parse_psi("some avg10=abc total=1").unwrap_err(),
        "some line: avg10 `abc` is not a percentage"
    );
    assert!(parse_psi("some avg10=100.01 total=1").is_err());
    assert!(parse_psi("some avg10=-1 total=1").is_err());
    assert!(parse_psi("full avg10=0.00 total=-5").is_err());
    assert_eq!(parse_percent("12.34"), Some(0.1234));
    assert_eq!(parse_percent("7.5"), Some(0.075));
    assert_eq!(parse_percent("3"), Some(0.03));
}

#[test]
fn host_values_match_real_proc_pressure() {
    let root = std::path::Path::new("/proc/pressure");
    if !root.is_dir() {
        eprintln!("no /proc/pressure here; skipped");
        return;
    }
    let read = |r: &str| {
        std::fs::read_to_string(root.join(r))
            .ok()
            .and_then(|t| parse_psi(&t).ok())
    };
    let before: Vec<_> = RESOURCES.iter().map(|r| read(r)).collect();
    let mut p = probe(&real_proc_context());
    let mut set = MetricSet::default();
    p.collect(&mut set).unwrap();
    let after: Vec<_> = RESOURCES.iter().map(|r| read(r)).collect();
    let value = |name: &str| {
        set.families
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.samples[0].value)
    };
    let mut compared = 0;
    for (i, resource) in RESOURCES.iter().enumerate() {
        let (Some(before), Some(after)) = (&before[i], &after[i]) else {
            continue;
        };
        for (b, a) in before.iter().zip(after) {
            let s = b.stall.as_str();
            let total = value(&format!(
                "huatuo_bamai_pressure_{resource}_{s}_seconds_total"
            ))
            .unwrap_or_else(|| panic!("{resource} {s} total missing"));
            // Totals only grow: the exported one lies between the two direct reads.
            assert!(
                b.total_us as f64 / 1e6 <= total && total <= a.total_us as f64 / 1e6,
                "{resource} {s}: {} <= {total} <= {}",
                b.total_us,
                a.total_us
            );
            let avg10 = value(&format!("huatuo_bamai_pressure_{resource}_{s}_avg10")).unwrap();
            let (lo, hi) = (b.avg10.min(a.avg10), b.avg10.max(a.avg10));
            assert!(
                lo <= avg10 && avg10 <= hi,
                "{resource} {s} avg10 {avg10} not in [{lo}, {hi}]"
            );
            compared += 1;
        }
    }
    assert!(compared > 0);
}
