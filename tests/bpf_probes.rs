//! Root tests against the real kernel: load softirq and runqlat, provoke the condition (loopback
//! traffic for NET_RX, more runnable threads than CPUs for runqlat), assert the counters rise in
//! the right zones through a real scrape of /metrics; toggle a probe live; every hook kind
//! attaches or degrades to `unsupported` with a reason.

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loop_device::{wait_quiet, LoopDevice};
use common::{bpf_available, sum, Agent};

/// BPF tests provoke CPU contention: run them one at a time so they do not skew each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn softirq_net_rx(metrics: &str) -> [f64; 4] {
    let mut zones = [0.0; 4];
    for (zone, slot) in zones.iter_mut().enumerate() {
        *slot = sum(
            metrics,
            "huatuo_bamai_softirq_latency",
            &[("type", "NET_RX"), ("zone", &zone.to_string())],
        );
    }
    zones
}

fn runqlat(metrics: &str) -> [f64; 4] {
    let mut zones = [0.0; 4];
    for (zone, slot) in zones.iter_mut().enumerate() {
        *slot = sum(
            metrics,
            "huatuo_bamai_runqlat_latency",
            &[("zone", &zone.to_string())],
        );
    }
    zones
}

/// Loopback traffic: every packet sent to 127.0.0.1 is received through NET_RX softirq.
fn loopback_traffic(duration: Duration) -> u64 {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        std::io::copy(&mut conn, &mut std::io::sink()).unwrap()
    });
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let chunk = vec![7u8; 1400];
    let deadline = Instant::now() + duration;
    let mut sent = 0;
    while Instant::now() < deadline {
        std::io::Write::write_all(&mut client, &chunk).unwrap();
        udp.send_to(&chunk[..64], sink.local_addr().unwrap())
            .unwrap();
        sent += 1;
    }
    drop(client);
    reader.join().unwrap();
    sent
}

/// `threads` busy loops for `duration`: more runnable threads than CPUs queue on run queues.
fn cpu_contention(threads: usize, duration: Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
}

fn settle() {
    // Probes tick every 250 ms in tests.
    std::thread::sleep(Duration::from_millis(700));
}

#[test]
fn softirq_net_rx_latency_rises_with_loopback_traffic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("softirq_net_rx_latency_rises_with_loopback_traffic") {
        return;
    }
    let agent = Agent::start(&["softirq"]);
    assert_eq!(agent.actor_state("softirq"), "running", "{}", agent.log());
    let before = softirq_net_rx(&agent.metrics());
    let sent = loopback_traffic(Duration::from_millis(1500));
    settle();
    let metrics = agent.metrics();
    let after = softirq_net_rx(&metrics);
    let delta: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let total: f64 = delta.iter().sum();
    assert!(
        total >= 100.0,
        "NET_RX softirqs after {sent} sends: zones {delta:?}"
    );
    // Loopback NET_RX runs right after it is raised: the fast zones dominate.
    assert!(delta[0] + delta[1] > 0.9 * total, "zones {delta:?}");
    // Every CPU series and both exported vectors are present.
    let cpus = std::thread::available_parallelism().unwrap().get();
    for cpu in 0..cpus {
        let cpu = cpu.to_string();
        for kind in ["NET_RX", "NET_TX"] {
            assert!(
                common::sample(
                    &metrics,
                    "huatuo_bamai_softirq_latency",
                    &[("cpuid", &cpu), ("type", kind), ("zone", "0")]
                )
                .is_some(),
                "cpu {cpu} {kind} missing"
            );
        }
    }
    assert!(
        !metrics.contains("type=\"TIMER\""),
        "only configured vectors are exported"
    );
}

#[test]
fn runqlat_zones_follow_contention() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("runqlat_zones_follow_contention") {
        return;
    }
    let agent = Agent::start(&["runqlat"]);
    let cpus = std::thread::available_parallelism().unwrap().get();

    let before = runqlat(&agent.metrics());
    std::thread::sleep(Duration::from_millis(1000));
    settle();
    let idle = runqlat(&agent.metrics());
    let idle_delta: Vec<f64> = idle.iter().zip(before).map(|(a, b)| a - b).collect();
    assert!(
        idle_delta[0] > 0.0,
        "wakeups are counted even when idle: {idle_delta:?}"
    );

    // 40 runnable threads per CPU: each waits for dozens of others' slices.
    cpu_contention(40 * cpus, Duration::from_millis(2500));
    settle();
    let busy = runqlat(&agent.metrics());
    let busy_delta: Vec<f64> = busy.iter().zip(idle).map(|(a, b)| a - b).collect();
    let slow: f64 = busy_delta[1..].iter().sum();
    eprintln!("runqlat deltas: idle {idle_delta:?} busy {busy_delta:?}");
    assert!(
        slow >= 20.0,
        "no waits >= 10ms under contention: {busy_delta:?} (idle {idle_delta:?})"
    );
    assert!(
        busy_delta[3] > 0.0,
        "no waits >= 50ms with 40 threads per CPU: {busy_delta:?}"
    );
    // The histogram sees every wait the zones saw.
    let metrics_now = agent.metrics();
    let zones_total: f64 = runqlat(&metrics_now).iter().sum();
    let hist = common::sample(
        &metrics_now,
        "huatuo_bamai_runqlat_latency_seconds_count",
        &[],
    )
    .unwrap();
    assert!(
        (hist - zones_total).abs() <= zones_total * 0.05 + 50.0,
        "histogram {hist} vs zones {zones_total}"
    );
    let over_50ms = hist
        - common::sample(
            &metrics_now,
            "huatuo_bamai_runqlat_latency_seconds_bucket",
            &[("le", "0.065536")],
        )
        .unwrap();
    assert!(
        over_50ms > 0.0,
        "no wait above 65 ms in the histogram under heavy contention"
    );
    // bpf_stats (on by default) reports the probe's own cost per program.
    let metrics = agent.metrics();
    let labels = [("probe", "runqlat"), ("program", "on_sched_switch")];
    let runs =
        common::sample(&metrics, "huatuo_bamai_bpf_prog_run_count_total", &labels).unwrap_or(0.0);
    let seconds =
        common::sample(&metrics, "huatuo_bamai_bpf_prog_run_seconds_total", &labels).unwrap_or(0.0);
    assert!(
        runs > 1000.0 && seconds > 0.0,
        "cost not reported: runs={runs} seconds={seconds}"
    );
    assert!(
        seconds / runs < 20e-6,
        "implausible {} ns per sched_switch run",
        seconds / runs * 1e9
    );
    let idle_slow: f64 = idle_delta[1..].iter().sum();
    assert!(
        slow > idle_slow * 5.0 + 10.0,
        "contention must move the slow zones: idle {idle_delta:?} busy {busy_delta:?}"
    );
}

#[test]
fn disable_detaches_and_enable_reattaches_live() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("disable_detaches_and_enable_reattaches_live") {
        return;
    }
    let agent = Agent::start(&["softirq", "loadavg"]);
    let pid = agent.pid();
    let ours = || {
        common::link_tps_of(pid)
            .iter()
            .filter(|t| t.starts_with("softirq_"))
            .count()
    };
    assert_eq!(ours(), 2, "softirq_raise + softirq_entry attached");
    let out = agent.ctl(&["disable", "softirq"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(agent.actor_state("softirq"), "disabled");
    assert_eq!(ours(), 0, "links released on disable");
    assert_eq!(agent.actor_state("loadavg"), "running", "sibling untouched");
    let out = agent.ctl(&["enable", "softirq"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    agent.wait_state("softirq", "running", Duration::from_secs(5));
    assert_eq!(ours(), 2);
}

#[test]
fn every_hook_kind_attaches_or_is_unsupported_with_a_reason() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("every_hook_kind_attaches_or_is_unsupported_with_a_reason") {
        return;
    }
    use huatuo_bamai::ebpf::{self, Attachment, BpfProgramSet, Hook};
    let _ = ebpf::ensure_kernel_filesystems();
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    let cases = [
        ("selftest_raw_tp", Hook::RawTp("sched_switch"), None),
        (
            "selftest_tracepoint",
            Hook::TracePoint {
                category: "syscalls",
                name: "sys_enter_nanosleep",
            },
            None,
        ),
        (
            "on_softirq_raise",
            Hook::TpBtf("no_such_tracepoint_x"),
            Some("no_such_tracepoint_x"),
        ),
        (
            "selftest_tracepoint",
            Hook::TracePoint {
                category: "no_such_category",
                name: "nope",
            },
            Some("does not exist"),
        ),
        (
            "selftest_kprobe",
            Hook::KProbe("do_nanosleep"),
            (!kprobes).then_some("kprobes unavailable: CONFIG_KPROBES off"),
        ),
    ];
    for (program, hook, unsupported) in cases {
        let object = if program.starts_with("on_") {
            huatuo_bamai::bpf_object!("softirq")
        } else {
            huatuo_bamai::bpf_object!("selftest")
        };
        let bpf = ebpf::load("selftest", object, &[]).unwrap();
        let result = BpfProgramSet::attach("selftest", bpf, &[Attachment { program, hook }]);
        match (result, unsupported) {
            (Ok(set), None) => assert_eq!(set.link_ids().len(), 1, "{hook}"),
            (Err(e), Some(reason)) => {
                assert!(e.is_unsupported(), "{hook} should be unsupported: {e}");
                assert!(e.to_string().contains(reason), "{hook}: {e}");
            }
            (Ok(_), Some(reason)) => panic!("{hook} attached, expected unsupported ({reason})"),
            (Err(e), None) => panic!("{hook} failed: {e}"),
        }
    }
    // fentry: either attaches or is unsupported with a reason; never any other error.
    let bpf = ebpf::load("selftest", huatuo_bamai::bpf_object!("selftest"), &[]).unwrap();
    let fentry = Attachment {
        program: "selftest_fentry",
        hook: Hook::FEntry("do_nanosleep"),
    };
    if let Err(e) = BpfProgramSet::attach("selftest", bpf, &[fentry]) {
        assert!(
            e.is_unsupported() && e.to_string().contains("fentry/fexit unavailable"),
            "{e}"
        );
    }
}

#[test]
fn runqlat_container_series_follow_contention_in_that_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("runqlat_container_series_follow_contention_in_that_container") {
        return;
    }
    let container = common::TestContainer::create().expect("create test cgroup");
    runqlat_follows_contention_in(container);
}

/// cgroup v1 without the container in the unified hierarchy: only the task's cpu css names
/// the container (upstream keys runqlat by the task group), so this fails if BPF reads the
/// default-hierarchy cgroup.
#[test]
fn runqlat_attributes_a_v1_only_container_by_its_cpu_cgroup() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("runqlat_attributes_a_v1_only_container_by_its_cpu_cgroup") {
        return;
    }
    let Some(container) = common::TestContainer::create_v1_only() else {
        eprintln!("runqlat_attributes_a_v1_only_container_by_its_cpu_cgroup: no cgroup v1 hierarchies here; nothing to test");
        return;
    };
    assert!(!container
        .dirs
        .iter()
        .any(|d| d.starts_with("/sys/fs/cgroup/unified")));
    runqlat_follows_contention_in(container);
}

fn runqlat_follows_contention_in(mut container: common::TestContainer) {
    let extra =
        "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";
    let agent = Agent::start_with(&["runqlat"], extra);
    let name = container.id[..12].to_string();
    let labels = |zone: &str| vec![("container_name", name.clone()), ("zone", zone.to_string())];
    let zones = |metrics: &str| -> Vec<Option<f64>> {
        (0..4)
            .map(|z| {
                let l = labels(&z.to_string());
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                common::sample(metrics, "huatuo_bamai_runqlat_container_latency", &l)
            })
            .collect()
    };
    // Discovered (series at 0) before the load starts.
    let start = std::time::Instant::now();
    while zones(&agent.metrics())[0].is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "container series missing:\n{}",
            agent.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before: Vec<f64> = zones(&agent.metrics())
        .into_iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    let host_before = runqlat(&agent.metrics());

    // 30 busy loops per CPU inside the container.
    let cpus = std::thread::available_parallelism().unwrap().get();
    for _ in 0..30 * cpus {
        container.spawn(Command::new("sh").args(["-c", "while :; do :; done"]));
    }
    std::thread::sleep(Duration::from_millis(2500));
    container.kill_processes();
    settle();
    let metrics = agent.metrics();
    let after: Vec<f64> = zones(&metrics)
        .into_iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("container runqlat delta {delta:?}");
    let slow: f64 = delta[1..].iter().sum();
    assert!(
        slow >= 20.0,
        "container waits >= 10ms not counted: {delta:?}"
    );
    let host_after = runqlat(&metrics);
    let host_slow: f64 = (1..4).map(|z| host_after[z] - host_before[z]).sum();
    assert!(
        host_slow >= slow,
        "host slow zones ({host_slow}) include the container's ({slow})"
    );
    // Removing the container removes its series.
    container.remove();
    let start = std::time::Instant::now();
    while zones(&agent.metrics())[0].is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "series of a removed container linger"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn iolatency_counts_every_completion_of_a_loop_device() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("iolatency_counts_every_completion_of_a_loop_device") {
        return;
    }
    // The device comes after the probe is attached, so every request on it is seen from its
    // issue (udev reads a new block device; one issued before attach would be missed).
    let agent = Agent::start(&["iolatency"]);
    let device = LoopDevice::create(16);
    let disk = device.disk();
    // Baselines only once the device is quiet and the probe has collected since.
    wait_quiet(&device);
    settle();
    let series = |metrics: &str, suffix: &str| {
        common::sample(
            metrics,
            &format!("huatuo_bamai_iolatency_blkdisk_d2c_seconds{suffix}"),
            &[("disk", &disk)],
        )
        .unwrap_or(0.0)
    };
    let before_metrics = agent.metrics();
    let before = device.completions();
    let (count_before, sum_before) = (
        series(&before_metrics, "_count"),
        series(&before_metrics, "_sum"),
    );

    let started = std::time::Instant::now();
    let of = format!("of={}", device.path);
    let input = format!("if={}", device.path);
    device.dd(&["if=/dev/zero", &of, "bs=4k", "count=300", "oflag=direct"]);
    device.dd(&[&input, "of=/dev/null", "bs=4k", "count=300", "iflag=direct"]);
    let wall = started.elapsed().as_secs_f64();
    // udev may read the device again after dd closes it: compare once it is quiet.
    let after = wait_quiet(&device);
    settle();
    let metrics = agent.metrics();
    let counted = series(&metrics, "_count") - count_before;
    let sum = series(&metrics, "_sum") - sum_before;
    assert_eq!(
        counted as u64,
        after - before,
        "probe completions vs /proc/diskstats for {disk}"
    );
    assert!(
        after - before >= 600,
        "dd did fewer I/Os than expected: {}",
        after - before
    );
    assert!(
        sum > 0.0 && sum < wall,
        "d2c latency sum {sum}s implausible for {wall}s of dd"
    );
    let q2c = common::sample(
        &metrics,
        "huatuo_bamai_iolatency_blkdisk_q2c_seconds_count",
        &[("disk", &disk)],
    )
    .unwrap();
    assert!(q2c >= counted, "q2c histogram counts the same completions");
    // Buckets are cumulative and the kernel's log2 slots put loop I/O well under 65 ms.
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("huatuo_bamai_iolatency_blkdisk_d2c_seconds_bucket{")
                && l.contains(&format!("disk=\"{disk}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "buckets not cumulative: {buckets:?}"
    );
    let under_65ms = common::sample(
        &metrics,
        "huatuo_bamai_iolatency_blkdisk_d2c_seconds_bucket",
        &[("disk", &disk), ("le", "0.065536")],
    )
    .unwrap();
    let total = series(&metrics, "_count");
    assert!(
        under_65ms >= 0.9 * total,
        "{under_65ms} of {total} completions under 65 ms"
    );
    // Upstream zone series exist for the disk (fast loop I/O stays below the 20 ms zones).
    assert!(common::sample(
        &metrics,
        "huatuo_bamai_iolatency_blkdisk_d2c",
        &[("disk", &disk), ("zone", "0")]
    )
    .is_some());
}

#[test]
fn memcg_reclaim_is_counted_for_the_container_that_hits_its_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("memcg_reclaim_is_counted_for_the_container_that_hits_its_limit") {
        return;
    }
    let container = common::TestContainer::create().expect("create test cgroup");
    memcg_reclaim_is_counted_in(container);
}

/// cgroup v1 without the container in the unified hierarchy: only the task's memory css names
/// the container, so this fails if BPF counts by the default-hierarchy cgroup.
#[test]
fn memcg_reclaim_attributes_a_v1_only_container_by_its_memory_cgroup() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("memcg_reclaim_attributes_a_v1_only_container_by_its_memory_cgroup") {
        return;
    }
    let Some(container) = common::TestContainer::create_v1_only() else {
        eprintln!("memcg_reclaim_attributes_a_v1_only_container_by_its_memory_cgroup: no cgroup v1 hierarchies here; nothing to test");
        return;
    };
    memcg_reclaim_is_counted_in(container);
}

fn memcg_reclaim_is_counted_in(mut container: common::TestContainer) {
    let extra =
        "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";
    let agent = Agent::start_with(&["memory_reclaim"], extra);
    // A 32 MiB memory limit (v1 or v2 file, whichever this host has).
    let limited = container.dirs.iter().any(|dir| {
        std::fs::write(dir.join("memory.limit_in_bytes"), "33554432").is_ok()
            || std::fs::write(dir.join("memory.max"), "33554432").is_ok()
    });
    assert!(
        limited,
        "no memory controller to limit in {:?}",
        container.dirs
    );
    let name = container.id[..12].to_string();
    let count = |metrics: &str| {
        common::sample(
            metrics,
            "huatuo_bamai_memory_reclaim_container_directstall",
            &[("container_name", &name)],
        )
    };
    let start = std::time::Instant::now();
    while count(&agent.metrics()).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "container series missing:\n{}",
            agent.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = count(&agent.metrics()).unwrap_or(0.0);

    // 128 MiB of page cache written from inside a 32 MiB memcg forces memcg reclaim (no OOM:
    // clean page cache is reclaimable). The sleep lets the test move the shell first.
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("fill");
    let script = format!(
        "sleep 0.3; dd if=/dev/zero of={} bs=1M count=128 2>/dev/null; sync",
        file.display()
    );
    container.spawn(Command::new("sh").args(["-c", &script]));
    std::thread::sleep(Duration::from_millis(3000));
    settle();
    let metrics = agent.metrics();
    let after = count(&metrics).unwrap_or(0.0);
    container.kill_processes();
    assert!(
        after - before > 0.0,
        "memcg reclaims not counted for {name}: {before} -> {after}"
    );
    // Host stall counters are exported (global direct reclaim is not provoked here: it would
    // need the whole host under memory pressure).
    for family in [
        "huatuo_bamai_memory_free_allocpages_stall",
        "huatuo_bamai_memory_free_compaction_stall",
    ] {
        assert!(
            common::sample(&metrics, family, &[]).is_some(),
            "{family} missing"
        );
    }
}

#[test]
fn iolatency_attributes_a_containers_io_to_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("iolatency_attributes_a_containers_io_to_it") {
        return;
    }
    let device = LoopDevice::create(16);
    let extra =
        "[containers]\nrescan_interval_ms = 200\nkubelet_url = \"\"\ndocker_socket = \"\"\n";
    let agent = Agent::start_with(&["iolatency"], extra);
    let mut container = common::TestContainer::create().expect("create test cgroup");
    let name = container.id[..12].to_string();
    let disk = device.disk();
    let completions = |metrics: &str| {
        common::sample(
            metrics,
            "huatuo_bamai_iolatency_container_blkdisk_completions_total",
            &[("container_name", &name), ("disk", &disk)],
        )
        .unwrap_or(0.0)
    };
    // Wait until discovery has told the kernel about the container.
    let start = std::time::Instant::now();
    while !agent
        .get("/containers/json")
        .unwrap()
        .1
        .contains(&container.id)
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "container not discovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    settle();
    let before_disk = device.completions();
    let before = completions(&agent.metrics());
    // Direct I/O from inside the container (the sleep lets the test move the shell first).
    let script = format!(
        "sleep 0.3; dd if=/dev/zero of={} bs=4k count=200 oflag=direct 2>/dev/null",
        device.path
    );
    container.spawn(Command::new("sh").args(["-c", &script]));
    let start = std::time::Instant::now();
    while device.completions() - before_disk < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dd did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    settle();
    let metrics = agent.metrics();
    let counted = completions(&metrics) - before;
    let on_disk = (device.completions() - before_disk) as f64;
    assert!(
        counted >= 200.0,
        "container completions {counted} (disk saw {on_disk}):\n{}",
        agent.log()
    );
    assert!(counted <= on_disk, "container {counted} > disk {on_disk}");
    assert!(common::sample(
        &metrics,
        "huatuo_bamai_iolatency_container_blkdisk_d2c",
        &[("container_name", &name), ("zone", "0")]
    )
    .is_some());
    container.kill_processes();
}
