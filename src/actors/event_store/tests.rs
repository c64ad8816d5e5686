use super::*;
use crate::config::{Config, FlagOverrides};
use crate::events::{EventQuery, BUS_CAPACITY};

fn context(store_path: &std::path::Path) -> (Arc<AgentContext>, EventsConfig) {
    let events = EventsConfig {
        store_path: store_path.to_path_buf(),
        ..Default::default()
    };
    let config = Config::default()
        .with_section(events)
        .expect("valid section");
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let source = crate::config::source_from(None, FlagOverrides::default(), Default::default());
    let ctx = Arc::new(AgentContext::new(source, prometheus, &config));
    (ctx, (*config.section::<EventsConfig>()).clone())
}

fn publish(ctx: &AgentContext, from: u64, to: u64) {
    for seq in from..to {
        let data = serde_json::json!({ "seq": seq });
        ctx.events
            .publish(EventDocument::new("h", "r", "oom", None, 0, data));
    }
}

async fn wait_for_documents(ctx: &AgentContext, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored = ctx
            .event_store
            .get()
            .and_then(|s| s.stats().ok())
            .map(|s| s.documents);
        if stored == Some(count) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stored:?} documents stored, waiting for {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// On a single-threaded runtime the sink cannot run while the test publishes, so a burst
/// larger than the bus lags it: it keeps the newest `BUS_CAPACITY` documents, and a stop
/// still stores what is on the bus.
#[tokio::test]
async fn sink_stores_what_the_bus_holds_and_drains_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let (ctx, config) = context(&path);
    let args = EventStoreArgs {
        config,
        ctx: ctx.clone(),
    };
    let (sink, handle) = Actor::spawn(None, EventStoreSink, args).await.unwrap();
    assert!(ctx.event_store.get().is_some(), "store lent once open");

    let burst = BUS_CAPACITY as u64 + 1000;
    publish(&ctx, 0, burst);
    wait_for_documents(&ctx, BUS_CAPACITY as u64).await;
    let store = ctx.event_store.get().unwrap();
    let kept = store
        .query(&EventQuery {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(kept[0].tracer_data["seq"], burst - 1, "the newest are kept");
    drop(store);

    publish(&ctx, burst, burst + 10);
    sink.stop(None);
    handle.await.unwrap();
    assert!(ctx.event_store.get().is_none(), "slot emptied on stop");
    let store = EventStore::open(&path, Retention::from_config(&Default::default())).unwrap();
    assert_eq!(store.stats().unwrap().documents, BUS_CAPACITY as u64 + 10);
}
