use super::*;

#[test]
fn parses_real_proc_loadavg() {
    let load = parse_loadavg("0.52 0.58 0.59 2/412 12345\n").unwrap();
    assert_eq!(
        load,
        LoadAverage {
            load1: 0.52,
            load5: 0.58,
            load15: 0.59
        }
    );
}

#[test]
fn truncated_file_names_missing_field() {
    assert_eq!(
        parse_loadavg("0.52 0.58").unwrap_err(),
        "missing load15 field"
    );
    assert_eq!(parse_loadavg("").unwrap_err(), "missing load1 field");
}

#[test]
fn garbage_names_field_and_value() {
    assert_eq!(
        parse_loadavg("0.1 abc 0.3").unwrap_err(),
        "load5 `abc` is not a number"
    );
    assert_eq!(
        parse_loadavg("-1 0 0").unwrap_err(),
        "load1 `-1` is out of range"
    );
    assert!(parse_loadavg("NaN 0 0").is_err());
}

mod containers {
    use super::super::*;
    use crate::exposition::MetricSet;
    use crate::probes::testutil::{
        assert_exact, assert_lines, collect_text, context, context_at, copy_fixture, expected,
        real_proc_context,
    };

    const D0CCE7: &str = r#"{container_host="d0cce7aaaaaa",container_name="d0cce7aaaaaa",container_type="normal",container_level="unknown",container_hostnamespace=""}"#;

    fn probe(ctx: ProbeContext) -> LoadavgProbe {
        LoadavgProbe::start(&LoadavgConfig::default(), &ctx).unwrap()
    }

    #[test]
    fn cgroup_v1_fixture_exact_lines() {
        let text = collect_text(&mut probe(context("cgroup-v1")));
        assert_exact(&text, &expected("loadavg-v1.txt"));
    }

    #[test]
    fn cgroup_v2_fixture_exact_lines() {
        let text = collect_text(&mut probe(context("cgroup-v2")));
        assert_exact(&text, &expected("loadavg-v2.txt"));
    }

    #[test]
    fn state_is_the_field_after_the_last_paren() {
        // A real /proc/self/stat line of this host.
        let line =
            b"30672 (cat) R 30658 30658 28737 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 244563";
        assert_eq!(parse_stat_state(line), Some(b'R'));
        assert_eq!(parse_stat_state(b"4647 (sh (wrk) 1) D 4646"), Some(b'D'));
        assert_eq!(parse_stat_state(b"12 (a) b) S 1"), Some(b'S'));
        assert_eq!(parse_stat_state(b"12 (trunc"), None);
        assert_eq!(parse_stat_state(b""), None);
        let mut counts = TaskCounts::default();
        for state in *b"RRDSIZT" {
            counts.add(state);
        }
        assert_eq!(
            counts,
            TaskCounts {
                running: 2,
                uninterruptible: 1
            }
        );
    }

    #[test]
    fn vanished_pids_are_skipped_silently() {
        let dir = copy_fixture("cgroup-v2");
        // 4243 (state D) exits between the read of cgroup.procs and of its stat file.
        std::fs::remove_file(dir.path().join("proc/4243/stat")).unwrap();
        let mut probe = probe(context_at(dir.path()));
        let text = collect_text(&mut probe);
        assert_lines(
            &text,
            &format!(
                "huatuo_bamai_loadavg_container_nr_running{D0CCE7} 1\n\
                 huatuo_bamai_loadavg_container_nr_uninterruptible{D0CCE7} 0\n"
            ),
        );
        assert!(probe.warned.is_empty());
    }

    #[test]
    fn malformed_files_skip_only_that_container_or_pid() {
        let dir = copy_fixture("cgroup-v1");
        let cpu = dir.path().join("sys/fs/cgroup/cpu,cpuacct");
        // An unreadable cgroup.procs (a directory in its place): the container is skipped.
        let procs = cpu.join(
            "docker/d0cce7aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/cgroup.procs",
        );
        std::fs::remove_file(&procs).unwrap();
        std::fs::create_dir(&procs).unwrap();
        // A truncated stat and a garbage pid line: only those entries are skipped.
        std::fs::write(dir.path().join("proc/4344/stat"), "4344 (ja").unwrap();
        let pod = cpu.join("kubepods/besteffort/pod66666666-7777-8888-9999-000000000000/be57efeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
        // cgroup.procs of the copy, not of the fixture.
        std::fs::write(pod.join("cgroup.procs"), "4646\nnot-a-pid\n4647\n").unwrap();
        let mut probe = probe(context_at(dir.path()));
        let text = collect_text(&mut probe);
        assert!(!text.contains("d0cce7aaaaaa"), "{text}");
        assert_lines(
            &text,
            r#"
            huatuo_bamai_loadavg_load1 4.48
            huatuo_bamai_loadavg_container_nr_running{container_host="c0ffeebbbbbb",container_name="c0ffeebbbbbb",container_type="normal",container_level="guaranteed",container_hostnamespace=""} 0
            huatuo_bamai_loadavg_container_nr_uninterruptible{container_host="be57efeeeeee",container_name="be57efeeeeee",container_type="normal",container_level="besteffort",container_hostnamespace=""} 1
            "#,
        );
    }

    #[test]
    fn host_file_missing_keeps_container_series() {
        let dir = copy_fixture("cgroup-v2");
        std::fs::remove_file(dir.path().join("proc/loadavg")).unwrap();
        let mut probe = probe(context_at(dir.path()));
        let text = collect_text(&mut probe);
        assert!(!text.contains("huatuo_bamai_loadavg_load1"));
        assert!(text.contains("huatuo_bamai_loadavg_container_nr_running{"));
        // With no container either, nothing was collected: an error naming the file.
        let empty = tempfile::tempdir().unwrap();
        let mut probe =
            super::super::LoadavgProbe::start(&LoadavgConfig::default(), &context_at(empty.path()))
                .unwrap();
        let err = probe.collect(&mut MetricSet::default()).unwrap_err();
        assert!(err.to_string().contains("loadavg"), "{err}");
    }

    /// Host values and our own process state, read from the real /proc.
    #[test]
    fn real_proc_values_match_direct_reads() {
        let line = std::fs::read("/proc/thread-self/stat").unwrap();
        // This thread is running while it reads its own stat.
        assert_eq!(parse_stat_state(&line), Some(b'R'));

        let mut probe = probe(real_proc_context());
        let mut set = MetricSet::default();
        probe.collect(&mut set).unwrap();
        let direct = parse_loadavg(&std::fs::read_to_string("/proc/loadavg").unwrap()).unwrap();
        let load15 = set
            .families
            .iter()
            .find(|f| f.name == "huatuo_bamai_loadavg_load15")
            .map(|f| f.samples[0].value)
            .unwrap();
        // load15 moves by far less than 0.1 between two reads microseconds apart.
        assert!(
            (load15 - direct.load15).abs() < 0.1,
            "{load15} vs {}",
            direct.load15
        );
    }
}
