//! Every kind of service, killed, comes back alone within 2 s (shipped backoff) while /metrics
//! keeps answering: no other actor restarts.

use std::time::{Duration, Instant};

use super::common::{free_port, sample, Agent};
use super::{Scraper, SERIAL};

#[test]
fn each_killed_service_restarts_alone_within_2s() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let closed = free_port();
    // Shipped supervisor defaults; the Elasticsearch sink and the sampler on so they can be killed.
    let agent = Agent::start_with(
        &["loadavg"],
        &format!(
            "[supervisor]\n[sampler]\nenabled = true\nbudget_ratio = 0.5\n\
             [events.elasticsearch]\nenabled = true\naddresses = [\"http://127.0.0.1:{closed}\"]\n"
        ),
    );
    let services = ["event_store", "elasticsearch", "sampler", "containers"];
    for service in services {
        agent.wait_state(service, "running", Duration::from_secs(10));
    }
    let scraper = Scraper::start(agent.port);
    let mut expected_restarts = std::collections::BTreeMap::new();
    for victim in services {
        let out = agent.ctl(&["kill", victim]);
        assert!(
            out.status.success(),
            "ctl kill {victim}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let killed = Instant::now();
        // It passes through `restarting`; wait for it to be running again with one more restart.
        *expected_restarts.entry(victim).or_insert(0.0) += 1.0;
        loop {
            let metrics = agent.metrics();
            let restarts = sample(
                &metrics,
                "huatuo_bamai_actor_restarts_total",
                &[("actor", victim)],
            );
            if restarts == Some(expected_restarts[victim]) && agent.actor_state(victim) == "running"
            {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(2),
                "{victim} not back within 2 s (restarts {restarts:?}, state {}):\n{}",
                agent.actor_state(victim),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let metrics = agent.metrics();
        for other in ["http", "control", "loadavg"].iter().chain(&services) {
            let want = expected_restarts.get(other).copied().unwrap_or(0.0);
            assert_eq!(
                sample(
                    &metrics,
                    "huatuo_bamai_actor_restarts_total",
                    &[("actor", other)]
                ),
                Some(want),
                "{other} after killing {victim}"
            );
        }
    }
    let (ok, failed) = scraper.finish();
    assert_eq!(failed, 0, "/metrics failed {failed} times ({ok} ok)");
}
