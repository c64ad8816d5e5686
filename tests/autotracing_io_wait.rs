//! AutoTracing triggers dload, iotracing and waitrate against the real kernel, as root: each
//! provokes its condition for real (D-state tasks on a frozen ext4, dd onto a loop-device file
//! system, two cgroups pinned to one CPU) with the thresholds lowered, and checks the document
//! names what caused it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{bpf_available, run, TestContainer};
use huatuo_bamai::core::Probe;
use huatuo_bamai::events::{EventDocument, TracerType};
use huatuo_bamai::probes::dload;

/// The tests move tasks between cgroups and load the CPUs: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// An ext4 file system on a loop device, mounted in a temp dir and frozen; thawed, unmounted
/// and detached on drop (also on panic).
struct FrozenExt4 {
    mountpoint: tempfile::TempDir,
    _device: common::loop_device::LoopDevice,
}

impl FrozenExt4 {
    fn create() -> Self {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(32 << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.path().to_str().unwrap()]);
        let device = common::loop_device::LoopDevice::over(image);
        let mountpoint = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[&device.path, mountpoint.path().to_str().unwrap()],
        );
        run("fsfreeze", &["-f", mountpoint.path().to_str().unwrap()]);
        FrozenExt4 {
            mountpoint,
            _device: device,
        }
    }

    fn path(&self) -> &Path {
        self.mountpoint.path()
    }
}

impl Drop for FrozenExt4 {
    fn drop(&mut self) {
        let path = self.path().to_string_lossy().to_string();
        let _ = Command::new("fsfreeze").args(["-u", &path]).status();
        let _ = Command::new("umount").arg(&path).status();
    }
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wait_for(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn d_state_tasks_in_a_container_are_a_dload_document_with_their_stacks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("d_state_tasks_in_a_container_are_a_dload_document_with_their_stacks") {
        return;
    }
    let fs = FrozenExt4::create();
    let mut container = TestContainer::create().expect("create test cgroup");
    // Writers into the frozen file system block in D state; the sleep lets the test move each
    // shell into the container first.
    let script = format!("sleep 0.3; echo x > {}/f", fs.path().display());
    let writers: Vec<u32> = (0..3)
        .map(|_| container.spawn(Command::new("sh").args(["-c", &script])))
        .collect();
    wait_for("writers in D state", Duration::from_secs(10), || {
        writers.iter().all(|pid| state_of(*pid) == Some('D'))
    });
    let ctx = common::host_probe_context();

    // Above the threshold by far: the averages climb, nothing is captured.
    let quiet = dload::DloadConfig {
        threshold: 1000.0,
        ..Default::default()
    };
    let mut probe = dload::DloadProbe::start(&quiet, &ctx).expect("start dload");
    let (documents, set) =
        common::collect_until(&mut probe, &ctx, Duration::from_millis(500), |_| false);
    assert!(
        documents.iter().all(|d| d.container_id != container.id),
        "captured below the threshold: {documents:#?}"
    );
    let short = &container.id[..12];
    let dload_avg = set
        .families
        .iter()
        .find(|f| f.name == "huatuo_bamai_dload_container_dload_avg")
        .and_then(|f| {
            f.samples.iter().find(|s| {
                s.labels
                    .iter()
                    .any(|(k, v)| *k == "container_host" && v == short)
            })
        })
        .map(|s| s.value)
        .unwrap_or_else(|| panic!("no dload_avg series for {short}: {set:#?}"));
    assert!(
        dload_avg > 0.1,
        "D-load of 3 D tasks after 5 samples: {dload_avg}"
    );

    // 3 D tasks step the D-load to 3 × 164/2048 ≈ 0.24 on the first sample: above 0.1.
    let low = dload::DloadConfig {
        threshold: 0.1,
        ..Default::default()
    };
    let mut probe = dload::DloadProbe::start(&low, &ctx).expect("start dload");
    let id = container.id.clone();
    let (documents, _) = common::collect_until(&mut probe, &ctx, Duration::from_secs(5), |docs| {
        docs.iter().any(|d| d.container_id == id)
    });
    let mine: Vec<&EventDocument> = documents.iter().filter(|d| d.container_id == id).collect();
    drop(fs);
    container.kill_processes();
    assert_eq!(mine.len(), 1, "one capture, then the cooldown: {mine:#?}");
    let document = mine[0];
    assert_eq!(document.tracer_name, "dload");
    assert_eq!(document.tracer_type, TracerType::Autotracing);
    let data = &document.tracer_data;
    for key in [
        "threshold",
        "nr_sleeping",
        "nr_running",
        "nr_stopped",
        "nr_uninterruptible",
        "nr_iowait",
        "load_avg",
        "dload_avg",
        "known_issue",
        "stack",
    ] {
        assert!(data.get(key).is_some(), "{key} missing: {data:#}");
    }
    assert!(
        data["nr_uninterruptible"].as_u64().unwrap() >= 3,
        "{data:#}"
    );
    assert!(data["dload_avg"].as_f64().unwrap() > 0.1, "{data:#}");
    let listed = data["container_tasks"].as_array().unwrap();
    for pid in &writers {
        let task = listed
            .iter()
            .find(|t| t["pid"] == *pid)
            .unwrap_or_else(|| panic!("writer {pid} not listed: {data:#}"));
        let stack = task["stack"].as_str().unwrap();
        assert!(!stack.is_empty(), "empty stack for {pid}: {task:#}");
        assert!(
            data["stack"]
                .as_str()
                .unwrap()
                .contains(&format!("pid={pid} ")),
            "{pid} missing from stack text"
        );
        assert!(
            data["host_tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["pid"] == *pid),
            "writer {pid} not among the host's D tasks"
        );
    }
}

#[allow(dead_code)]
fn spawn_quiet(command: &mut Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

#[test]
fn a_container_pinned_with_a_heavier_one_on_one_cpu_names_it_as_top_waitrate_contender() {
    use huatuo_bamai::probes::waitrate;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("a_container_pinned_with_a_heavier_one_on_one_cpu_names_it") {
        return;
    }
    let mut victim = TestContainer::create().expect("create victim cgroup");
    let mut contender = TestContainer::create().expect("create contender cgroup");
    let ctx = common::host_probe_context();
    let settings = waitrate::WaitrateConfig {
        threshold: 0.3,
        spike_factor: 0.0,
        min_run_ms: 10,
        ..Default::default()
    };
    let mut probe = waitrate::WaitrateProbe::start(&settings, &ctx).expect("start waitrate");
    // Busy loops pinned to CPU 0: one in the victim, three in the contender, so the victim waits
    // about twice as long as it runs, behind the contender.
    let spin = || {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "sh", "-c", "sleep 0.3; while :; do :; done"]);
        c
    };
    // The CPU is shared with whatever else the host runs (root cgroup): a high weight makes
    // the contender take most of it, so it must rank above the host.
    // On v1 the `docker` parent competes with every root-cgroup task as one entity: weight it
    // too (restored below).
    let mut restore = Vec::new();
    for dir in &contender.dirs {
        for (file, value) in [("cpu.shares", "100000"), ("cpu.weight", "5000")] {
            let _ = std::fs::write(dir.join(file), value);
            if let Some(parent) = dir.parent() {
                let path = parent.join(file);
                if let Ok(old) = std::fs::read_to_string(&path) {
                    if std::fs::write(&path, value).is_ok() {
                        restore.push((path, old));
                    }
                }
            }
        }
    }
    victim.spawn(&mut spin());
    for _ in 0..3 {
        contender.spawn(&mut spin());
    }
    let id = victim.id.clone();
    let mut rx = ctx.events.subscribe();
    let mut set = huatuo_bamai::exposition::MetricSet::default();
    // The loops start after their 0.3 s sleep: the baseline window begins once they spin.
    std::thread::sleep(Duration::from_millis(1000));
    probe.collect(&mut set).expect("first window");
    let mut document = None;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(1000));
        set = huatuo_bamai::exposition::MetricSet::default();
        probe.collect(&mut set).expect("collect");
        while let Ok(d) = rx.try_recv() {
            if d.tracer_name == "waitrate" && d.container_id == id {
                document = Some(d.as_ref().clone());
            }
        }
        if document.is_some() {
            break;
        }
    }
    victim.kill_processes();
    contender.kill_processes();
    for (path, old) in restore {
        let _ = std::fs::write(path, old.trim());
    }
    let document = document.expect("no waitrate document for the victim");
    assert_eq!(document.tracer_type, TracerType::Autotracing);
    let data = &document.tracer_data;
    assert!(data["curr_waitrate"].as_f64().unwrap() > 0.3, "{data:#}");
    let top = &data["contenders"][0];
    assert_eq!(top["container_id"], contender.id.as_str(), "{data:#}");
    assert!(top["cpu_time_ns"].as_u64().unwrap() > 0, "{data:#}");
    assert!(
        data["exter_wait_rate"].as_f64().unwrap() > data["inner_wait_rate"].as_f64().unwrap(),
        "a lone task waits behind others, not itself: {data:#}"
    );
    let short = &victim.id[..12];
    let exported = set
        .families
        .iter()
        .find(|f| f.name == "huatuo_bamai_cpu_waitrate_container_exter_wait_rate")
        .map(|f| {
            f.samples.iter().any(|s| {
                s.labels
                    .iter()
                    .any(|(k, v)| *k == "container_host" && v == short)
            })
        });
    assert_eq!(exported, Some(true), "no exter_wait_rate gauge for {short}");
}
