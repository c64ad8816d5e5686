//! Supervision in-process: a child that fails on purpose is restarted alone with exponential
//! backoff, marked `failed` after too many restarts, an unsupported probe goes `inactive` without
//! restarts, and siblings keep running throughout.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huatuo_bamai::actors::probe::part;
use huatuo_bamai::config::{Config, FlagOverrides};
use huatuo_bamai::core::status::{ActorStatus, AgentStatus};
use huatuo_bamai::core::{AgentContext, Probe, ProbeContext, ProbeError, SupervisorMsg};
use huatuo_bamai::ebpf::BpfError;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::loadavg::LoadavgConfig;
use huatuo_bamai::supervisor::{AgentSupervisor, SupervisorArgs};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};

fn failure(name: &'static str) -> ProbeError {
    ProbeError::Parse {
        probe: name,
        path: "test".into(),
        reason: "failing on purpose".into(),
    }
}

macro_rules! test_probe {
    ($ty:ident, $name:literal, $starts:ident, $start:expr, $collect:expr) => {
        static $starts: AtomicU32 = AtomicU32::new(0);
        struct $ty;
        impl Probe for $ty {
            const NAME: &'static str = $name;
            type Settings = LoadavgConfig;
            fn start(_: &LoadavgConfig, _: &ProbeContext) -> Result<Self, ProbeError> {
                let n = $starts.fetch_add(1, Ordering::SeqCst);
                START_TIMES.lock().unwrap().push(($name, Instant::now()));
                let f: fn(u32) -> Result<(), ProbeError> = $start;
                f(n).map(|_| $ty)
            }
            fn collect(&mut self, _: &mut MetricSet) -> Result<(), ProbeError> {
                let f: fn() -> Result<(), ProbeError> = $collect;
                f()
            }
        }
    };
}

static START_TIMES: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
static PANICS: AtomicU32 = AtomicU32::new(0);

test_probe!(Steady, "steady", STEADY, |_| Ok(()), || Ok(()));
test_probe!(
    FailsTwice,
    "fails_twice",
    FAILS_TWICE,
    |n| if n < 2 {
        Err(failure("fails_twice"))
    } else {
        Ok(())
    },
    || Ok(())
);
test_probe!(
    AlwaysFails,
    "always_fails",
    ALWAYS_FAILS,
    |_| Err(failure("always_fails")),
    || Ok(())
);
test_probe!(PanicsOnce, "panics_once", PANICS_ONCE, |_| Ok(()), || {
    if PANICS.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("collect panics on purpose");
    }
    Ok(())
});
test_probe!(
    NoKprobes,
    "no_kprobes",
    NO_KPROBES,
    |_| Err(ProbeError::Bpf(BpfError::Unsupported {
        probe: "no_kprobes",
        reason: "kprobes unavailable: CONFIG_KPROBES off".into()
    })),
    || Ok(())
);

async fn status(supervisor: &ActorRef<SupervisorMsg>) -> AgentStatus {
    match supervisor
        .call(SupervisorMsg::Status, Some(Duration::from_secs(5)))
        .await
        .unwrap()
    {
        CallResult::Success(s) => s,
        _ => panic!("no status"),
    }
}

fn actor<'a>(status: &'a AgentStatus, name: &str) -> &'a ActorStatus {
    status.actors.iter().find(|a| a.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_alone_with_backoff_and_gives_up() {
    let mut config = Config::default()
        .with_section(LoadavgConfig {
            interval_ms: 100,
            ..Default::default()
        })
        .unwrap();
    config.supervisor.restart_backoff_initial_ms = 100;
    config.supervisor.restart_backoff_max_ms = 400;
    config.supervisor.max_restarts = 3;
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let source =
        huatuo_bamai::config::source_from(None, FlagOverrides::default(), Default::default());
    let ctx = Arc::new(AgentContext::new(source, prometheus, &config));
    let args = SupervisorArgs {
        config,
        ctx,
        parts: vec![
            part::<Steady>(),
            part::<FailsTwice>(),
            part::<AlwaysFails>(),
            part::<PanicsOnce>(),
            part::<NoKprobes>(),
        ],
    };
    let (supervisor, _handle) = Actor::spawn(None, AgentSupervisor, args).await.unwrap();

    // 100 + 200 + 400 ms of backoff for always_fails, then it is given up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = status(&supervisor).await;

    let steady = actor(&s, "steady");
    assert_eq!(
        (steady.state.as_str(), steady.restarts),
        ("running", 0),
        "sibling untouched"
    );

    let twice = actor(&s, "fails_twice");
    assert_eq!((twice.state.as_str(), twice.restarts), ("running", 2));

    let always = actor(&s, "always_fails");
    assert_eq!((always.state.as_str(), always.restarts), ("failed", 3));
    assert!(always
        .reason
        .as_deref()
        .unwrap()
        .contains("gave up after 3 restarts"));
    assert!(always
        .last_error
        .as_deref()
        .unwrap()
        .contains("failing on purpose"));

    let panicky = actor(&s, "panics_once");
    assert_eq!((panicky.state.as_str(), panicky.restarts), ("running", 1));
    assert!(
        panicky
            .last_error
            .as_deref()
            .unwrap()
            .contains("panics on purpose"),
        "{:?}",
        panicky.last_error
    );

    let inactive = actor(&s, "no_kprobes");
    assert_eq!(
        (inactive.state.as_str(), inactive.restarts),
        ("inactive", 0)
    );
    assert!(inactive
        .reason
        .as_deref()
        .unwrap()
        .contains("CONFIG_KPROBES off"));
    assert_eq!(
        NO_KPROBES.load(Ordering::SeqCst),
        1,
        "no restart loop for an unsupported probe"
    );
    assert!(
        !s.ready,
        "a failed probe keeps the agent unready (inactive ones do not)"
    );
    assert!(!s.actors.is_empty());

    // Backoff doubles: gaps between always_fails starts ~100, ~200, ~400 ms.
    let times: Vec<Instant> = START_TIMES
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n == "always_fails")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(times.len(), 4, "initial start + 3 restarts");
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    for (gap, expected) in gaps.iter().zip([100u128, 200, 400]) {
        assert!(*gap >= expected && *gap < expected + 250, "gaps {gaps:?}");
    }
    supervisor
        .stop_and_wait(None, Some(Duration::from_secs(5)))
        .await
        .unwrap();
}
