//! AutoTracing iotracing against the real kernel, as root: an ext4 file system on a loop device
//! kept busy by a direct-I/O writer trips the (lowered) util threshold; during the capture a
//! `dd oflag=direct` writes a known number of bytes to `victim.bin`, and the document must name
//! that file (path, inode of `stat`) under the dd process with the bytes it wrote. A second dd,
//! in a test container whose writes to the loop device are throttled to 1 MiB/s, sits in
//! `io_schedule`: it must be listed with that stack and its container.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bpf_available, run, TestContainer};
use huatuo_bamai::core::Probe;
use huatuo_bamai::events::{EventDocument, TracerType};
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::iotracing::{IotracingConfig, IotracingProbe};

/// An ext4 file system on a loop device mounted in a temp dir; unmounted on drop.
struct Ext4 {
    mountpoint: tempfile::TempDir,
    device: common::loop_device::LoopDevice,
}

impl Ext4 {
    fn create(size_mb: u64) -> Self {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(size_mb << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.path().to_str().unwrap()]);
        let device = common::loop_device::LoopDevice::over(image);
        let mountpoint = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[&device.path, mountpoint.path().to_str().unwrap()],
        );
        Ext4 { mountpoint, device }
    }

    fn file(&self, name: &str) -> String {
        self.mountpoint
            .path()
            .join(name)
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        // A killed writer may still be exiting: retry while the mount is busy.
        for _ in 0..50 {
            let done = Command::new("umount")
                .arg(self.mountpoint.path())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if done {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn gauge(set: &MetricSet, name: &str) -> Option<f64> {
    set.families
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
}

/// Every disk of /proc/diskstats but `keep`: the trigger then watches only the test's device.
fn all_disks_but(keep: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/diskstats")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .filter(|d| d != keep)
        .collect()
}

#[test]
fn dd_onto_a_busy_loop_device_is_named_with_its_file_and_bytes() {
    if !bpf_available("dd_onto_a_busy_loop_device_is_named_with_its_file_and_bytes") {
        return;
    }
    // Run-time statistics of the capture's programs: the document reports them.
    let _stats = huatuo_bamai::ebpf::BpfStatsGuard::enable().expect("enable bpf_stats");
    let fs = Ext4::create(128);
    let disk = fs.device.disk();
    // Direct writes of this container to the loop device wait for the throttle in io_schedule.
    let mut container = TestContainer::create().expect("create test cgroup");
    let mut throttled = false;
    for dir in &container.dirs {
        for (file, value) in [
            ("blkio.throttle.write_bps_device", format!("{disk} 1048576")),
            ("io.max", format!("{disk} wbps=1048576")),
        ] {
            throttled |= std::fs::write(dir.join(file), &value).is_ok();
        }
    }
    assert!(throttled, "cannot throttle {:?}", container.dirs);
    // After the container exists: discovery (the context's scan) knows it.
    let ctx = common::host_probe_context();
    let hostname = ctx
        .containers
        .borrow()
        .by_id(&container.id)
        .map(|c| c.hostname.clone())
        .expect("test container discovered");
    let settings = IotracingConfig {
        interval_ms: 300,
        util_threshold: 10.0,
        capture_secs: 5,
        sample_ms: 200,
        stall_min_ms: 100,
        device_excluded: all_disks_but(fs.device.name()),
        // The load's many short dd runs must not push the two under test out.
        max_processes: 256,
        ..Default::default()
    };
    let mut probe = IotracingProbe::start(&settings, &ctx).expect("start iotracing");
    let mut rx = ctx.events.subscribe();

    // Keeps the loop device busy until killed (32 MiB per dd run).
    let load_script = format!(
        "while :; do dd if=/dev/zero of={} bs=64k count=512 oflag=direct status=none; done",
        fs.file("load.bin")
    );
    let mut load = Command::new("sh")
        .args(["-c", &load_script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn load");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut set = MetricSet::default();
        probe.collect(&mut set).expect("collect");
        if gauge(&set, "huatuo_bamai_iotracing_capture_running") == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no capture started on {}: {set:#?}",
            fs.device.name()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // 2 MiB at 1 MiB/s; the sleep lets spawn move the shell into the container before dd runs.
    let slow_script = format!(
        "sleep 0.3; exec dd if=/dev/zero of={} bs=256k count=8 oflag=direct status=none",
        fs.file("throttled.bin")
    );
    let slow_pid = container.spawn(Command::new("sh").args(["-c", &slow_script]));

    // 32 MiB in 256 KiB direct writes, inside the 5 s window.
    let victim = fs.file("victim.bin");
    let started = Instant::now();
    let dd = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={victim}"),
            "bs=256k",
            "count=128",
            "oflag=direct",
            "status=none",
        ])
        .spawn()
        .expect("spawn dd");
    let dd_pid = dd.id();
    let out = dd.wait_with_output().expect("dd");
    assert!(out.status.success(), "dd failed");
    let dd_took = started.elapsed();
    let inode = std::fs::metadata(&victim).unwrap().ino();
    const WRITTEN: u64 = 32 << 20;

    let mut document: Option<EventDocument> = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while document.is_none() && Instant::now() < deadline {
        let mut set = MetricSet::default();
        probe.collect(&mut set).expect("collect");
        while let Ok(d) = rx.try_recv() {
            if d.tracer_name == "iotracing" {
                document = Some(d.as_ref().clone());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    container.kill_processes();
    // The shell and its running dd: the whole process group.
    unsafe { libc::kill(-(load.id() as i32), libc::SIGKILL) };
    let _ = load.wait();
    let document = document.expect("no iotracing document");
    assert_eq!(document.tracer_type, TracerType::Autotracing);
    // What upstream's event dashboard shows for iotracing is there.
    common::upstream::assert_dashboard_fields(&document);
    let data = &document.tracer_data;
    assert!(
        dd_took < Duration::from_secs(4),
        "dd took {dd_took:?}, longer than the window"
    );
    assert_eq!(data.get("failure_reason"), None, "{data:#}");
    let reason = &data["reason_snapshot"];
    assert_eq!(reason["type"], "ioutil", "{reason:#}");
    assert_eq!(reason["device"], fs.device.name(), "{reason:#}");
    assert!(reason["iostatus"]["io_util"].as_f64().unwrap() > 10.0);
    assert_eq!(data["dev"], fs.device.name());
    assert_eq!(data["status"]["io_util"], reason["iostatus"]["io_util"]);
    assert_eq!(
        format!("{}:{}", reason["major_num"], reason["minor_num"]),
        disk
    );

    let processes = data["process_file_io_stats"].as_array().unwrap();
    let process = processes
        .iter()
        .find(|p| p["pid"] == dd_pid)
        .unwrap_or_else(|| panic!("dd (pid {dd_pid}) not listed: {data:#}"));
    assert_eq!(process["comm"], "dd", "{process:#}");
    let file = process["total_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["inode"] == inode)
        .unwrap_or_else(|| panic!("victim.bin (inode {inode}) not among dd's files: {process:#}"));
    assert!(
        file["path"].as_str().unwrap().ends_with("victim.bin"),
        "{file:#}"
    );
    assert_eq!(
        format!("{}:{}", file["major"], file["minor"]),
        disk,
        "the file's device is the loop disk: {file:#}"
    );
    assert_eq!(file["dev_name"], fs.device.name(), "{file:#}");
    assert_eq!(file["is_direct"], true, "{file:#}");
    // Every write syscall is seen: the exact byte count.
    assert_eq!(file["fs_write_bytes"], WRITTEN, "{file:#}");
    // The direct writes reach the disk as requests of dd's: within 10 %.
    let disk_bytes = file["disk_write_bytes"].as_u64().unwrap();
    assert!(
        disk_bytes.abs_diff(WRITTEN) <= WRITTEN / 10,
        "disk bytes {disk_bytes} vs {WRITTEN}: {file:#}"
    );
    assert!(file["requests"].as_u64().unwrap() > 0, "{file:#}");
    let (q2c, d2c) = (
        file["q2c_us"].as_u64().unwrap(),
        file["d2c_us"].as_u64().unwrap(),
    );
    assert!(d2c > 0 && q2c >= d2c, "q2c {q2c} d2c {d2c}: {file:#}");
    assert!(file["max_q2c_us"].as_u64().unwrap() >= q2c, "{file:#}");
    assert!(
        process["total_fs_write_bytes"].as_u64().unwrap() >= WRITTEN,
        "{process:#}"
    );
    assert!(
        data["pdata"]
            .as_str()
            .unwrap()
            .contains(&format!("{dd_pid} dd: fs write {WRITTEN} ")),
        "{}",
        data["pdata"]
    );
    let top = data["top_files"].as_array().unwrap();
    assert!(
        top.iter()
            .any(|f| f["inode"] == inode && f["pid"] == dd_pid),
        "victim.bin not among the top files: {data:#}"
    );

    // The throttled writer: its file under its container, and its io_schedule stack.
    let slow = processes
        .iter()
        .find(|p| p["pid"] == slow_pid)
        .unwrap_or_else(|| panic!("throttled dd (pid {slow_pid}) not listed: {data:#}"));
    assert_eq!(slow["comm"], "dd", "{slow:#}");
    assert_eq!(slow["container_id"], container.id.as_str(), "{slow:#}");
    assert_eq!(slow["container_hostname"], hostname.as_str(), "{slow:#}");
    assert!(
        slow["total_files"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("throttled.bin"),
        "{slow:#}"
    );
    let stalls = data["io_schedule_timeout_stacks"].as_array().unwrap();
    let stall = stalls
        .iter()
        .find(|s| s["pid"] == slow_pid)
        .unwrap_or_else(|| panic!("throttled dd not in io_schedule_timeout_stacks: {data:#}"));
    let frames: Vec<&str> = stall["stack"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        frames.iter().any(|f| f.starts_with("io_schedule")),
        "{stall:#}"
    );
    assert_eq!(stall["container_hostname"], hostname.as_str(), "{stall:#}");
    // 256 KiB writes at 1 MiB/s: each waits about 250 ms for the throttle.
    let latency = stall["schedule_latency_us"].as_u64().unwrap();
    assert!(
        (100_000..2_000_000).contains(&latency) && stall["count"].as_u64().unwrap() >= 2,
        "sleeps of ~250 ms expected: {stall:#}"
    );

    // The cost of the window, per program (bpf_stats on): printed for the record.
    let programs = data["programs"].as_array().unwrap();
    let capture_ms = data["capture_ms"].as_u64().unwrap();
    let mut total_ns = 0;
    for p in programs {
        let (count, ns) = (
            p["run_count"].as_u64().unwrap(),
            p["run_time_ns"].as_u64().unwrap(),
        );
        total_ns += ns;
        eprintln!(
            "cost {:<22} runs {count:>8} run_time {:>9} ns ({} ns/run)",
            p["program"].as_str().unwrap(),
            ns,
            ns.checked_div(count).unwrap_or(0)
        );
    }
    eprintln!(
        "cost total {total_ns} ns over {capture_ms} ms = {:.4} % of one CPU",
        total_ns as f64 / (capture_ms as f64 * 1e6) * 100.0
    );
    let runs = |name: &str| {
        programs
            .iter()
            .find(|p| p["program"] == name)
            .and_then(|p| p["run_count"].as_u64())
            .unwrap_or(0)
    };
    assert!(runs("on_enter_write") >= 64, "{programs:#?}");
    assert!(runs("on_block_rq_complete") > 0, "{programs:#?}");

    // Detached after the window: no program of the capture is loaded any more.
    let loaded: Vec<String> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|p| p.name_as_str().map(str::to_string))
        .collect();
    assert!(
        !loaded.iter().any(|n| n.starts_with("on_block_io_sta")),
        "capture programs still loaded: {loaded:?}"
    );
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    assert_eq!(
        gauge(&set, "huatuo_bamai_iotracing_capture_running"),
        Some(0.0)
    );
    assert_eq!(
        gauge(&set, "huatuo_bamai_iotracing_captures_total"),
        Some(1.0)
    );
}
