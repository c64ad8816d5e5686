use std::io::Write;

use super::*;
use crate::config::Section;

/// Lines as a 6.x kernel logs a soft lockup (captured shape of kernel/watchdog.c's report: the
/// report, the modules, the stuck CPU's registers and stack), as /dev/kmsg gives them.
const CAPTURED: &[&str] = &[
    "0,2317,98765432,-,caller=C3;watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [stress-ng-cpu:4242]",
    "4,2318,98765440,-,caller=C3;Modules linked in: veth xt_nat",
    "4,2319,98765447,-,caller=C3;CPU: 3 UID: 0 PID: 4242 Comm: stress-ng-cpu Not tainted 6.18.0 #1",
    "4,2320,98765451,-,caller=C3;RIP: 0010:native_queued_spin_lock_slowpath+0x6e/0x2d0",
    "4,2321,98765460,-,caller=C3;Call Trace:",
    "4,2322,98765461,-,caller=C3; <IRQ>",
];

#[test]
fn captured_kernel_report_parses_to_upstreams_fields() {
    let record = KmsgRecord::parse(CAPTURED[0]).unwrap();
    assert_eq!(record.facility, 0, "priority 0: facility kern, level emerg");
    assert_eq!(record.level, 0);
    assert_eq!(record.seq, 2317);
    assert_eq!(record.usec, 98_765_432);
    let report = SoftLockupReport::parse(&record.text).unwrap().unwrap();
    assert_eq!(
        report,
        SoftLockupReport {
            cpu: 3,
            stuck_secs: 23,
            comm: "stress-ng-cpu".into(),
            pid: 4242,
        }
    );
    // The lines after it are no report.
    for line in &CAPTURED[1..] {
        let record = KmsgRecord::parse(line).unwrap();
        assert!(SoftLockupReport::parse(&record.text).is_none(), "{line}");
    }
}

#[test]
fn older_kernels_prefix_and_comm_with_colons_parse() {
    let report = SoftLockupReport::parse(
        "NMI watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [kworker/0:1:77]",
    )
    .unwrap()
    .unwrap();
    assert_eq!((report.cpu, report.pid), (0, 77));
    assert_eq!(report.comm, "kworker/0:1");
}

#[test]
fn garbled_records_and_reports_are_errors_naming_what_is_wrong() {
    let no_prefix = KmsgRecord::parse("no semicolon here").unwrap_err();
    assert!(no_prefix.to_string().contains("';'"), "{no_prefix}");
    let bad_seq = KmsgRecord::parse("6,x,12,-;hello").unwrap_err();
    assert!(bad_seq.to_string().contains("sequence"), "{bad_seq}");
    let no_ts = KmsgRecord::parse("6,1;hello").unwrap_err();
    assert!(no_ts.to_string().contains("timestamp"), "{no_ts}");
    for (text, what) in [
        ("BUG: soft lockup - CPU#x stuck for 3s! [a:1]", "CPU number"),
        ("BUG: soft lockup - CPU#1 stuck for many! [a:1]", "'s!'"),
        ("BUG: soft lockup - CPU#1 stuck for 3s! a:1", "[comm:pid]"),
        ("BUG: soft lockup - CPU#1 stuck for 3s! [a:b]", "pid"),
        ("BUG: soft lockup - CPU#1", "stuck for"),
    ] {
        let err = SoftLockupReport::parse(text).unwrap().unwrap_err();
        assert!(err.to_string().contains(what), "{text}: {err}");
    }
}

#[test]
fn kmsg_escapes_decode() {
    assert_eq!(unescape(r"a\x0ab\x5cc"), "a\nb\\c");
    // Not an escape: kept as written.
    assert_eq!(unescape(r"\xZZ end\x"), r"\xZZ end\x");
}

#[test]
fn reader_tails_from_open_and_skips_continuation_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmsg");
    std::fs::write(
        &path,
        "0,1,5,-;watchdog: BUG: soft lockup - CPU#1 stuck for 30s! [old:1]\n",
    )
    .unwrap();
    let mut reader = KmsgReader::open(&path).unwrap();
    assert!(
        reader.drain(100).unwrap().records.is_empty(),
        "the past is not read"
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // Half a line: read only once it is complete.
    write!(file, "6,2,7,-;hel").unwrap();
    assert!(reader.drain(100).unwrap().records.is_empty());
    write!(
        file,
        "lo\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\ngarbage\n6,3,9,-;x\n"
    )
    .unwrap();
    let drained = reader.drain(100).unwrap();
    let texts: Vec<_> = drained
        .records
        .iter()
        .map(|r| r.as_ref().map(|r| r.text.clone()).map_err(|_| ()))
        .collect();
    assert_eq!(texts, vec![Ok("hello".into()), Err(()), Ok("x".into())]);
}

#[test]
fn config_rejects_inverted_backoff_and_empty_path() {
    assert!(SoftlockupConfig::default().validate().is_ok());
    let inverted = SoftlockupConfig {
        report_backoff_secs: 100,
        report_backoff_max_secs: 10,
        ..Default::default()
    };
    let err = inverted.validate().unwrap_err().to_string();
    assert!(err.contains("report_backoff_max_secs"), "{err}");
    let empty = SoftlockupConfig {
        kmsg_path: PathBuf::new(),
        ..Default::default()
    };
    assert!(empty
        .validate()
        .unwrap_err()
        .to_string()
        .contains("kmsg_path"));
}

struct Fixture {
    _dir: tempfile::TempDir,
    kmsg: std::fs::File,
    probe: SoftlockupProbe,
    events: tokio::sync::broadcast::Receiver<std::sync::Arc<EventDocument>>,
}

/// A probe tailing a file of kmsg lines, over a procfs that has the detector's sysctl.
fn fixture(settings: SoftlockupConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
    std::fs::write(dir.path().join("sys/kernel/soft_watchdog"), "1\n").unwrap();
    let path = dir.path().join("kmsg");
    std::fs::write(&path, "").unwrap();
    let ctx = crate::probes::testutil::host_only_context(dir.path());
    let events = ctx.events.subscribe();
    let settings = SoftlockupConfig {
        kmsg_path: path.clone(),
        ..settings
    };
    let probe = SoftlockupProbe::start(&settings, &ctx).unwrap();
    let kmsg = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    Fixture {
        _dir: dir,
        kmsg,
        probe,
        events,
    }
}

impl Fixture {
    fn write(&mut self, lines: &[&str]) {
        for line in lines {
            writeln!(self.kmsg, "{line}").unwrap();
        }
    }

    fn collect(&mut self) -> (String, Vec<std::sync::Arc<EventDocument>>) {
        let text = crate::probes::testutil::collect_text(&mut self.probe);
        let mut documents = Vec::new();
        while let Ok(document) = self.events.try_recv() {
            documents.push(document);
        }
        (text, documents)
    }
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
        })
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn a_report_becomes_one_document_with_the_log_after_it_and_later_ones_are_backed_off() {
    let mut f = fixture(SoftlockupConfig {
        stack_window_ms: 0,
        ..Default::default()
    });
    // The reported thread 4242 belongs to process 4200.
    std::fs::create_dir_all(f._dir.path().join("4242")).unwrap();
    std::fs::write(
        f._dir.path().join("4242/status"),
        "Name:\tstress-ng-cpu\nTgid:\t4200\nPid:\t4242\n",
    )
    .unwrap();
    f.write(CAPTURED);
    let (text, documents) = f.collect();
    assert_eq!(sample(&text, "huatuo_bamai_softlockup_total"), 1.0);
    assert_eq!(documents.len(), 1, "{documents:?}");
    let document = &documents[0];
    assert_eq!(document.tracer_name, "softlockup");
    let data = &document.tracer_data;
    assert_eq!(data["cpu"], 3);
    assert_eq!(data["pid"], 4200);
    assert_eq!(data["tid"], 4242);
    assert_eq!(data["comm"], "stress-ng-cpu");
    assert_eq!(data["stuck_secs"], 23);
    let stack = data["cpus_stack"].as_str().unwrap();
    let lines: Vec<&str> = stack.lines().collect();
    assert_eq!(lines.len(), CAPTURED.len(), "{stack}");
    // `YYYY-MM-DD HH:MM:SS text`, as upstream's kmsgutil.
    assert!(lines[0]
        .ends_with(" watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [stress-ng-cpu:4242]"));
    assert_eq!(lines[0].as_bytes()[4], b'-');
    assert_eq!(lines[0].as_bytes()[19], b' ');
    assert!(lines[4].ends_with(" Call Trace:"), "{stack}");

    // The next report within the backoff period counts, without a document.
    f.write(&CAPTURED[..1]);
    let (text, documents) = f.collect();
    assert_eq!(sample(&text, "huatuo_bamai_softlockup_total"), 2.0);
    assert!(documents.is_empty());
}

#[test]
fn the_document_waits_for_the_stack_window() {
    let mut f = fixture(SoftlockupConfig {
        stack_window_ms: 300,
        ..Default::default()
    });
    f.write(&CAPTURED[..2]);
    let (_, documents) = f.collect();
    assert!(documents.is_empty(), "published before the window ended");
    f.write(&CAPTURED[2..]);
    std::thread::sleep(Duration::from_millis(350));
    let (_, documents) = f.collect();
    assert_eq!(documents.len(), 1);
    let stack = documents[0].tracer_data["cpus_stack"].as_str().unwrap();
    assert_eq!(
        stack.lines().count(),
        CAPTURED.len(),
        "lines of later reads joined: {stack}"
    );
}

#[test]
fn user_space_lines_count_only_when_kernel_messages_only_is_off() {
    // Priority 9: facility user (1), level alert: what a root `echo > /dev/kmsg` looks like.
    let forged = "9,40,1000,-;watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [sh:99]";
    let mut strict = fixture(SoftlockupConfig::default());
    strict.write(&[forged]);
    let (text, documents) = strict.collect();
    assert_eq!(sample(&text, "huatuo_bamai_softlockup_total"), 0.0);
    assert!(documents.is_empty());

    let mut open = fixture(SoftlockupConfig {
        kernel_messages_only: false,
        stack_window_ms: 0,
        ..Default::default()
    });
    open.write(&[forged]);
    let (text, documents) = open.collect();
    assert_eq!(sample(&text, "huatuo_bamai_softlockup_total"), 1.0);
    assert_eq!(documents.len(), 1);
    // No /proc/99: the process id falls back to the reported thread id.
    assert_eq!(documents[0].tracer_data["pid"], 99);
    assert_eq!(documents[0].tracer_data["tid"], 99);
}

#[test]
fn garbled_lines_are_counted_errors_and_do_not_stop_the_probe() {
    let mut f = fixture(SoftlockupConfig {
        stack_window_ms: 0,
        ..Default::default()
    });
    f.write(&[
        "garbage without prefix",
        "0,5,6,-;watchdog: BUG: soft lockup - CPU#zz stuck for 1s! [a:1]",
        CAPTURED[0],
    ]);
    let (text, documents) = f.collect();
    assert_eq!(
        sample(&text, "huatuo_bamai_softlockup_kmsg_errors_total"),
        2.0
    );
    assert_eq!(sample(&text, "huatuo_bamai_softlockup_total"), 1.0);
    assert_eq!(documents.len(), 1);
}

#[test]
fn a_kernel_without_the_detector_is_inactive() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = crate::probes::testutil::host_only_context(dir.path());
    let err = SoftlockupProbe::start(&SoftlockupConfig::default(), &ctx)
        .err()
        .expect("no soft_watchdog sysctl");
    assert!(err.is_unsupported(), "{err}");
    assert!(err.to_string().contains("soft_watchdog"), "{err}");
}
