//! Root test of adaptive sampling against the real kernel: the real agent runs dropwatch with a
//! small overhead budget, the test floods UDP datagrams to a closed port on 127.0.0.1 (every
//! one is a kfree_skb the probe sees), and asserts what an operator would check: the storm
//! pushed the measured overhead over budget, the sampler raised dropwatch's sampling divisor,
//! the overhead came back under budget and stayed there while the storm went on, the decision
//! is visible in `ctl status`, and once the storm stops the divisor is relaxed back to 1.
//! And the sampling itself keeps counters unbiased: iolatency at 1-in-4 still counts a loop
//! device's completions as /proc/diskstats does, within the sampling error; past the largest
//! event divisor the programs are really detached on the off-slots of their duty cycle, both
//! when driven directly and by the probe actor's own slot timer.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::loop_device::{wait_quiet, LoopDevice};
use common::{bpf_available, Agent};
use huatuo_bamai::core::Probe;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::{iolatency, runqlat};

/// Well above the agent's own idle CPU in a debug build (~1 %) plus the floor the kfree_skb
/// program's in-kernel 1-in-N check costs under the storm (~1.5 % at 1-in-1024, two flooders on
/// two CPUs): at 3 % the test measured how close those two sat to the line, not the throttle.
/// The storm's unthrottled peak (~20 %) is still four times this.
const BUDGET: f64 = 0.05;

/// One test at a time: every agent's kfree_skb program runs for every drop on the host, so
/// another test's flood would count as this test's overhead.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn closed_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("local addr").port()
}

/// Sends datagrams to `port` as fast as one thread can until `stop`.
fn flood(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..256 {
                if socket.send_to(b"storm", ("127.0.0.1", port)).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
}

struct Reading {
    at: Duration,
    overhead: f64,
    /// The agent process's own CPU share of `overhead` (the rest is BPF run time).
    agent_cpu: f64,
    divisor: f64,
}

fn read(agent: &Agent, start: Instant) -> Option<Reading> {
    let metrics = agent.metrics();
    Some(Reading {
        at: start.elapsed(),
        overhead: common::sample(&metrics, "huatuo_bamai_overhead_ratio", &[])?,
        agent_cpu: common::sample(
            &metrics,
            "huatuo_bamai_overhead_part_ratio",
            &[("part", "agent_cpu")],
        )?,
        divisor: common::sample(
            &metrics,
            "huatuo_bamai_probe_sampling_divisor",
            &[("probe", "dropwatch")],
        )?,
    })
}

/// Polls until `done` holds for a reading, or panics with the timeline after `timeout`.
fn wait_for(
    agent: &Agent,
    start: Instant,
    timeline: &mut Vec<String>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Reading) -> bool,
) -> Reading {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = read(agent, start) {
            timeline.push(format!(
                "{:>5.1}s overhead {:.4} divisor {} (agent cpu {:.4})",
                r.at.as_secs_f64(),
                r.overhead,
                r.divisor,
                r.agent_cpu
            ));
            if done(&r) {
                return r;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {timeout:?}; timeline:\n{}\nagent log:\n{}",
            timeline.join("\n"),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn udp_storm_is_throttled_back_under_budget_and_relaxed_after() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("udp_storm_is_throttled_back_under_budget_and_relaxed_after") {
        return;
    }
    let agent = Agent::start_with(
        &["dropwatch"],
        &format!(
            // Few documents: the storm's cost under test is the kernel side the sampler throttles;
            // each stored document costs user-space CPU a debug build counts against the budget.
            "[probes.dropwatch]\nprotocols = [\"udp\"]\nmax_events_per_second = 10\n\
             [sampler]\nbudget_ratio = {BUDGET}\ninterval_ms = 1000\n\
             throttle_after_rounds = 2\nrelax_after_rounds = 2\n"
        ),
    );
    let start = Instant::now();
    let mut timeline = Vec::new();
    // The sampler decides nothing in its first 10 s; wait until it measures a quiet host.
    wait_for(
        &agent,
        start,
        &mut timeline,
        Duration::from_secs(30),
        "the sampler exported the overhead",
        |r| r.divisor == 1.0 && r.at > Duration::from_secs(10),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let port = closed_port();
    let flooders: Vec<_> = (0..2).map(|_| flood(port, stop.clone())).collect();
    let storm_started = Instant::now();
    let throttled = wait_for(
        &agent,
        start,
        &mut timeline,
        Duration::from_secs(20),
        "dropwatch throttled",
        |r| r.divisor > 1.0,
    );
    // The storm really was over budget: something before the throttle read over it.
    let peak = timeline
        .iter()
        .filter_map(|l| {
            l.split("overhead ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .fold(0.0, f64::max);
    assert!(
        peak > BUDGET,
        "the storm never pushed the overhead over {BUDGET}: nothing proves the throttle; timeline:\n{}",
        timeline.join("\n")
    );
    // Back under budget within 10 s of the storm's start (issue target), and held there.
    let under = wait_for(
        &agent,
        start,
        &mut timeline,
        Duration::from_secs(15),
        "overhead back under budget",
        |r| r.overhead <= BUDGET,
    );
    let recovered_after = storm_started.elapsed();
    assert!(
        recovered_after <= Duration::from_secs(10),
        "overhead back under budget only {recovered_after:?} after the storm began; timeline:\n{}",
        timeline.join("\n")
    );
    let mut held = Vec::new();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(r) = read(&agent, start) {
            timeline.push(format!(
                "{:>5.1}s overhead {:.4} divisor {} (storm on)",
                r.at.as_secs_f64(),
                r.overhead,
                r.divisor
            ));
            held.push(r.overhead);
        }
    }
    assert!(
        held.iter().all(|o| *o <= BUDGET * 1.25),
        "overhead did not stay near the budget while the storm went on; timeline:\n{}",
        timeline.join("\n")
    );
    let status = agent.ctl(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("throttle dropwatch") && status.contains("overhead "),
        "ctl status shows no decision:\n{status}"
    );

    stop.store(true, Ordering::Relaxed);
    let sent: u64 = flooders.into_iter().map(|f| f.join().unwrap_or(0)).sum();
    assert!(sent > 10_000, "the flood sent only {sent} datagrams");
    let relaxed = wait_for(
        &agent,
        start,
        &mut timeline,
        Duration::from_secs(60),
        "dropwatch relaxed back to full rate",
        |r| r.divisor == 1.0,
    );
    let metrics = agent.metrics();
    let relax_steps = common::sum(
        &metrics,
        "huatuo_bamai_sampler_decisions_total",
        &[("probe", "dropwatch"), ("action", "relax")],
    );
    assert!(relax_steps >= 1.0, "no relax decision counted");
    eprintln!(
        "throttled to 1/{} at {:.1}s, under budget {:.1}s after the storm began (overhead {:.4}), \
         relaxed at {:.1}s; {sent} datagrams\n{}",
        throttled.divisor,
        throttled.at.as_secs_f64(),
        recovered_after.as_secs_f64(),
        under.overhead,
        relaxed.at.as_secs_f64(),
        timeline.join("\n")
    );
}

/// Start-up is not overhead: the first window the sampler exports opens after every part has
/// started, so loading BTF and BPF objects (a burst of CPU) shows in the start-up gauges and not
/// in the overhead ratio.
#[test]
fn start_up_cost_is_reported_apart_from_the_overhead() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("start_up_cost_is_reported_apart_from_the_overhead") {
        return;
    }
    let agent = Agent::start_with(
        &["runqlat", "dropwatch", "softirq", "iolatency"],
        "[sampler]\ninterval_ms = 500\n",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let (first, metrics) = loop {
        let metrics = agent.metrics();
        if let Some(overhead) = common::sample(&metrics, "huatuo_bamai_overhead_ratio", &[]) {
            break (overhead, metrics);
        }
        assert!(
            Instant::now() < deadline,
            "no overhead exported:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = common::sample(&metrics, "huatuo_bamai_startup_seconds", &[])
        .expect("huatuo_bamai_startup_seconds exported with the overhead");
    let cpu = common::sample(&metrics, "huatuo_bamai_startup_cpu_seconds", &[])
        .expect("huatuo_bamai_startup_cpu_seconds exported with the overhead");
    let status = agent.ctl(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        !status.contains("starting"),
        "overhead exported while a part was still starting:\n{status}"
    );
    eprintln!("start-up {wall:.3} s, {cpu:.3} CPU s; first window {first:.4}");
    assert!(wall > 0.0 && cpu > 0.0, "start-up {wall} s, {cpu} CPU s");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let startup_ratio = cpu / (wall * cpus);
    // Loading four BPF probes' objects costs far more per second than running them idle: had the
    // first window covered any of it, it would read like the start-up.
    assert!(
        first < startup_ratio / 2.0,
        "first overhead window {first:.4} looks like start-up ({startup_ratio:.4} = {cpu:.3} CPU s over {wall:.3} s)"
    );
}

/// `_count` of the d2c histogram of `disk` in a collected set.
fn d2c_count(set: &MetricSet, disk: &str) -> f64 {
    set.families
        .iter()
        .filter(|f| f.name == "huatuo_bamai_iolatency_blkdisk_d2c_seconds")
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.suffix == "_count" && s.labels.iter().any(|(k, v)| *k == "disk" && v == disk))
        .map(|s| s.value)
        .sum()
}

#[test]
fn sampled_counts_stay_unbiased() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("sampled_counts_stay_unbiased") {
        return;
    }
    let ctx = common::host_probe_context();
    let mut probe = iolatency::IolatencyProbe::start(&iolatency::IolatencyConfig::default(), &ctx)
        .expect("iolatency attaches");
    assert_eq!(
        probe.sampling_divisor(),
        Some(1),
        "iolatency has a sampling knob"
    );
    const DIVISOR: u32 = 4;
    probe
        .set_sampling_divisor(DIVISOR)
        .expect("set the divisor");
    assert_eq!(probe.sampling_divisor(), Some(DIVISOR));

    let device = LoopDevice::create(64);
    let disk = device.disk();
    let before_io = wait_quiet(&device);
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    let before = d2c_count(&set, &disk);
    let of = format!("of={}", device.path);
    let input = format!("if={}", device.path);
    device.dd(&["if=/dev/zero", &of, "bs=4k", "count=2000", "oflag=direct"]);
    device.dd(&[
        &input,
        "of=/dev/null",
        "bs=4k",
        "count=2000",
        "iflag=direct",
    ]);
    let real = (wait_quiet(&device) - before_io) as f64;
    let mut set = MetricSet::default();
    probe.collect(&mut set).expect("collect");
    let estimated = d2c_count(&set, &disk) - before;
    // Each kept request counts DIVISOR times ...
    assert_eq!(
        estimated % f64::from(DIVISOR),
        0.0,
        "{estimated} is not a multiple of {DIVISOR}"
    );
    // ... and 1-in-4 of ~4000 keeps ~1000: the estimate's standard error is ~3 %; 20 % is > 6 σ.
    // Sampling without weights would read ~25 %, weights without sampling ~400 %.
    assert!(real >= 4000.0, "dd did only {real} I/Os");
    assert!(
        (estimated - real).abs() <= 0.2 * real,
        "sampled estimate {estimated} vs {real} real completions"
    );
}

/// Run count of `program` (bpf_stats; the agent's tests enable them through the probe's load).
fn run_count(probe: &mut runqlat::RunqlatProbe, program: &str) -> u64 {
    probe
        .programs()
        .map(|set| set.costs())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.program == program)
        .map(|c| c.run_count)
        .sum()
}

/// Context switches: a thread that sleeps 1 ms 200 times.
fn switch_a_lot() {
    std::thread::spawn(|| {
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .join()
    .expect("sleeper");
}

#[test]
fn past_the_event_divisor_programs_are_detached_on_off_ticks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !bpf_available("past_the_event_divisor_programs_are_detached_on_off_ticks") {
        return;
    }
    // Run counts need bpf_stats; hold them on for this test (the agent does the same).
    let _stats = huatuo_bamai::ebpf::BpfStatsGuard::enable().expect("bpf_stats");
    let ctx = common::host_probe_context();
    let mut probe = runqlat::RunqlatProbe::start(&runqlat::RunqlatConfig::default(), &ctx)
        .expect("runqlat attaches");
    // 2048 = 1-in-1024 events × attached one tick in 2.
    probe.set_sampling_divisor(2048).expect("set the divisor");
    assert_eq!(probe.sampling_divisor(), Some(2048));
    let programs = probe.programs().expect("BPF probe");
    programs.duty_cycle_tick().expect("tick 1");
    assert!(programs.paused(), "tick 1 of 2 is an off-tick");
    let before = run_count(&mut probe, "on_sched_switch");
    switch_a_lot();
    assert_eq!(
        run_count(&mut probe, "on_sched_switch"),
        before,
        "a detached program ran"
    );
    let programs = probe.programs().expect("BPF probe");
    programs.duty_cycle_tick().expect("tick 2");
    assert!(!programs.paused(), "tick 2 of 2 is an on-tick");
    assert!(
        programs.reattach_lost_links().expect("links").is_empty(),
        "the links are healthy after the resume"
    );
    switch_a_lot();
    assert!(
        run_count(&mut probe, "on_sched_switch") >= before + 200,
        "the re-attached program does not run"
    );
    // Back to a plain divisor: attached for good.
    probe.set_sampling_divisor(1).expect("set the divisor");
    let programs = probe.programs().expect("BPF probe");
    for _ in 0..3 {
        programs.duty_cycle_tick().expect("tick");
        assert!(!programs.paused());
    }
}

/// Stands in for the supervisor: the probe actor reports to it, nobody listens.
struct NullSupervisor;

impl ractor::Actor for NullSupervisor {
    type Msg = huatuo_bamai::core::SupervisorMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}

#[test]
fn the_probe_actor_runs_the_duty_cycle_on_its_own_slots() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use huatuo_bamai::actors::probe::{ProbeActor, ProbeArgs};
    use huatuo_bamai::core::ProbeMsg;
    if !bpf_available("the_probe_actor_runs_the_duty_cycle_on_its_own_slots") {
        return;
    }
    let _stats = huatuo_bamai::ebpf::BpfStatsGuard::enable().expect("bpf_stats");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (supervisor, _) = ractor::Actor::spawn(None, NullSupervisor, ())
            .await
            .expect("supervisor stand-in");
        let args = ProbeArgs::<runqlat::RunqlatProbe> {
            settings: runqlat::RunqlatConfig::default(),
            ctx: common::host_probe_context(),
            store: std::sync::Arc::new(huatuo_bamai::exposition::MetricStore::new(1000, vec![])),
            supervisor: supervisor.clone(),
        };
        let (probe, _) =
            ractor::Actor::spawn(None, ProbeActor::<runqlat::RunqlatProbe>::default(), args)
                .await
                .expect("probe actor");
        let switches = async |probe: &ractor::ActorRef<ProbeMsg>| -> u64 {
            let cost = ractor::call!(probe, ProbeMsg::Cost).expect("cost");
            cost.programs
                .iter()
                .filter(|p| p.program == "on_sched_switch")
                .map(|p| p.run_count)
                .sum()
        };
        // Wait for the attach (post_start), then 4 × 1024: attached one 250 ms slot a second.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ractor::call!(probe, ProbeMsg::Cost)
            .expect("cost")
            .sampling_divisor
            .is_none()
        {
            assert!(Instant::now() < deadline, "runqlat never attached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        probe
            .cast(ProbeMsg::SetSampling(4096))
            .expect("set sampling");
        let cost = ractor::call!(probe, ProbeMsg::Cost).expect("cost");
        assert_eq!(cost.sampling_divisor, Some(4096));
        // Over 3 s, in 50 ms steps with context switches going on: some steps see the program
        // run (attached slots) and most see it not run at all (detached slots).
        let (mut ran, mut idle) = (0, 0);
        let mut last = switches(&probe).await;
        for _ in 0..60 {
            tokio::task::spawn_blocking(|| {
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
            .await
            .expect("sleeper");
            let now = switches(&probe).await;
            if now > last {
                ran += 1;
            } else {
                idle += 1;
            }
            last = now;
        }
        assert!(
            ran >= 3,
            "the programs never ran: {ran} steps ran, {idle} idle"
        );
        assert!(
            idle >= 20,
            "the programs were never detached: {ran} steps ran, {idle} idle"
        );
        // Back to full rate: attached for good.
        probe.cast(ProbeMsg::SetSampling(1)).expect("set sampling");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let before = switches(&probe).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            switches(&probe).await > before,
            "not re-attached at divisor 1"
        );
        probe.stop(None);
        supervisor.stop(None);
    });
}
