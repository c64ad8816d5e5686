use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::schema::time_key;
use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn retention(max_age: Duration, max_bytes: u64) -> Retention {
    Retention { max_age, max_bytes }
}

fn roomy() -> Retention {
    retention(7 * DAY, 1 << 30)
}

/// A document created at `secs` after the epoch (+ `seq` ns, so ids stay unique).
fn doc_at(secs: u64, seq: u64, tracer: &str, container: Option<(&str, &str)>) -> EventDocument {
    let mut doc = EventDocument::new("h", "r", tracer, None, 0, json!({"seq": seq}));
    let nanos = secs * 1_000_000_000 + seq;
    doc.tracer_id = format!("{nanos:016x}{seq:016x}");
    doc.set_event_time(UNIX_EPOCH + Duration::from_nanos(nanos));
    if let Some((id, hostname)) = container {
        doc.container_id = id.to_string();
        doc.container_hostname = hostname.to_string();
    }
    doc
}

fn open(dir: &tempfile::TempDir, retention: Retention) -> EventStore {
    EventStore::open(&dir.path().join("sub/events.redb"), retention).unwrap()
}

fn ids(docs: &[EventDocument]) -> Vec<u64> {
    docs.iter()
        .map(|d| d.tracer_data["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn insert_then_get_round_trips_and_unknown_ids_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, roomy());
    let doc = doc_at(1_000, 1, "oom", Some(("abc", "web")));
    let outcome = store.insert([&doc]).unwrap();
    assert_eq!((outcome.written, outcome.documents), (1, 1));
    assert_eq!(store.get(&doc.tracer_id).unwrap(), Some(doc.clone()));
    assert_eq!(store.get("00000000000000000000000000000000").unwrap(), None);
    assert_eq!(store.get("not-an-id").unwrap(), None);
    // The same id again replaces the document; the byte count does not grow.
    let before = store.stats().unwrap();
    store.insert([&doc]).unwrap();
    assert_eq!(store.stats().unwrap().stored_bytes, before.stored_bytes);
    assert_eq!(store.stats().unwrap().documents, 1);
}

#[test]
fn ids_without_a_time_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, roomy());
    let mut bad = doc_at(1_000, 1, "oom", None);
    bad.tracer_id = "zz".into();
    let good = doc_at(1_000, 2, "oom", None);
    let outcome = store.insert([&bad, &good]).unwrap();
    assert_eq!(outcome.written, 1);
    assert_eq!(outcome.rejected, vec!["zz".to_string()]);
    assert_eq!(store.stats().unwrap().documents, 1);
}

#[test]
fn query_returns_the_newest_matches_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, roomy());
    let docs: Vec<EventDocument> = (0..10).map(|i| doc_at(1_000 + i, i, "oom", None)).collect();
    // Written out of order, in two batches: key order is still time order.
    store.insert(docs[5..].iter().rev()).unwrap();
    store.insert(docs[..5].iter()).unwrap();
    let all = store.query(&EventQuery::default()).unwrap();
    assert_eq!(ids(&all), (0..10).collect::<Vec<_>>());
    let newest = store
        .query(&EventQuery {
            limit: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&newest), vec![7, 8, 9]);
}

#[test]
fn query_filters_by_time_tracer_and_container() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, roomy());
    let web = Some(("d0c5aaaa", "web-1"));
    let db = Some(("beef0000", "db-1"));
    let docs = [
        doc_at(100, 0, "oom", web),
        doc_at(200, 1, "hungtask", None),
        doc_at(300, 2, "oom", db),
        doc_at(400, 3, "dropwatch", web),
        doc_at(500, 4, "oom", None),
    ];
    store.insert(docs.iter()).unwrap();
    let run = |query: EventQuery| ids(&store.query(&query).unwrap());
    let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
    // Both bounds are inclusive.
    assert_eq!(
        run(EventQuery {
            since: at(200),
            until: at(400),
            ..Default::default()
        }),
        vec![1, 2]
    );
    assert_eq!(
        run(EventQuery {
            since: at(200),
            until: Some(UNIX_EPOCH + Duration::new(400, 3)),
            ..Default::default()
        }),
        vec![1, 2, 3]
    );
    assert_eq!(
        run(EventQuery {
            since: at(401),
            ..Default::default()
        }),
        vec![4]
    );
    assert_eq!(
        run(EventQuery {
            since: at(400),
            until: at(300),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        run(EventQuery {
            tracer_name: Some("oom".into()),
            ..Default::default()
        }),
        vec![0, 2, 4]
    );
    // Container: an id prefix, a hostname, or an id resolved from a name by the caller.
    let by_container = |wanted: &str, resolved: Vec<String>| {
        run(EventQuery {
            container: Some(wanted.into()),
            container_ids: resolved,
            ..Default::default()
        })
    };
    assert_eq!(by_container("d0c5", vec![]), vec![0, 3]);
    assert_eq!(by_container("db-1", vec![]), vec![2]);
    assert_eq!(by_container("web", vec![]), Vec::<u64>::new());
    assert_eq!(by_container("nginx", vec!["beef0000".into()]), vec![2]);
    assert_eq!(
        run(EventQuery {
            tracer_name: Some("oom".into()),
            container: Some("web-1".into()),
            ..Default::default()
        }),
        vec![0]
    );
}

#[test]
fn purge_deletes_documents_past_the_retention_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, retention(2 * DAY, 1 << 30));
    let now = UNIX_EPOCH + 10 * DAY;
    let docs = [
        doc_at((7 * DAY).as_secs(), 0, "oom", None),
        doc_at((8 * DAY).as_secs() - 1, 1, "oom", None),
        doc_at((8 * DAY).as_secs() + 1, 2, "oom", None),
        doc_at((9 * DAY).as_secs(), 3, "oom", None),
    ];
    store.insert(docs.iter()).unwrap();
    let outcome = store.purge(now).unwrap();
    assert_eq!(
        (outcome.expired, outcome.evicted, outcome.documents),
        (2, 0, 2)
    );
    assert_eq!(
        ids(&store.query(&EventQuery::default()).unwrap()),
        vec![2, 3]
    );
    assert_eq!(store.get(&docs[0].tracer_id).unwrap(), None);
    // Nothing more to do: the next purge changes nothing.
    assert_eq!(store.purge(now).unwrap().expired, 0);
    // Bytes are accounted for what is left.
    let left: u64 = docs[2..]
        .iter()
        .map(|d| (d.tracer_id.len() + serde_json::to_vec(d).unwrap().len()) as u64)
        .sum();
    assert_eq!(store.stats().unwrap().stored_bytes, left);
}

#[test]
fn size_cap_deletes_the_oldest_documents_first() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<EventDocument> = (0..20).map(|i| doc_at(1_000 + i, i, "oom", None)).collect();
    let size = (docs[0].tracer_id.len() + serde_json::to_vec(&docs[0]).unwrap().len()) as u64;
    // Room for five documents.
    let store = open(&dir, retention(365 * DAY, 5 * size + size / 2));
    for doc in &docs[..5] {
        assert_eq!(store.insert([doc]).unwrap().evicted, 0);
    }
    let outcome = store.insert(docs[5..8].iter()).unwrap();
    assert_eq!((outcome.evicted, outcome.documents), (3, 5));
    assert!(outcome.stored_bytes <= 5 * size + size / 2);
    assert_eq!(
        ids(&store.query(&EventQuery::default()).unwrap()),
        vec![3, 4, 5, 6, 7]
    );
    drop(store);
    // Reopened with a smaller cap, the purge trims to it, oldest first.
    let store = open(&dir, retention(365 * DAY, 2 * size));
    let outcome = store
        .purge(UNIX_EPOCH + Duration::from_secs(2_000))
        .unwrap();
    assert_eq!((outcome.expired, outcome.evicted), (0, 3));
    assert_eq!(
        ids(&store.query(&EventQuery::default()).unwrap()),
        vec![6, 7]
    );
}

#[test]
fn reopening_keeps_every_committed_document() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<EventDocument> = (0..50).map(|i| doc_at(1_000 + i, i, "oom", None)).collect();
    {
        let store = open(&dir, roomy());
        for chunk in docs.chunks(7) {
            store.insert(chunk.iter()).unwrap();
        }
    }
    let store = open(&dir, roomy());
    let stats = store.stats().unwrap();
    assert_eq!(stats.documents, 50);
    assert!(stats.file_bytes >= stats.stored_bytes, "{stats:?}");
    let back = store
        .query(&EventQuery {
            limit: MAX_LIMIT,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(back, docs);
}

#[test]
fn a_second_open_of_the_same_file_is_refused_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(&dir, roomy());
    let second = EventStore::open(&dir.path().join("sub/events.redb"), roomy());
    assert!(
        matches!(second, Err(StoreError::InUse { .. })),
        "{second:?}"
    );
}

#[test]
fn an_unusable_path_is_an_open_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let err = EventStore::open(&file.join("events.redb"), roomy()).unwrap_err();
    assert!(err.to_string().contains("plain-file"), "{err}");
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let err = EventStore::open(&garbage, roomy()).unwrap_err();
    assert!(err.to_string().contains("garbage.redb"), "{err}");
}

#[test]
fn tracer_id_times_and_query_times() {
    let t = UNIX_EPOCH + Duration::new(1_795_395_723, 5);
    let id = format!("{}{:016x}", time_key(t), 9);
    assert_eq!(tracer_id_time(&id), Some(t));
    assert_eq!(tracer_id_time("short"), None);
    assert_eq!(tracer_id_time("zzzzzzzzzzzzzzzz0000"), None);
    assert_eq!(
        parse_instant("1795395723").unwrap(),
        UNIX_EPOCH + Duration::from_secs(1_795_395_723)
    );
    assert_eq!(
        parse_instant("1795395723.25").unwrap(),
        UNIX_EPOCH + Duration::from_millis(1_795_395_723_250)
    );
    for same in [
        "2026-11-23T01:02:03Z",
        // A document's `time`, pasted as it is.
        "2026-11-23 01:02:03.000 +0000",
    ] {
        assert_eq!(
            parse_instant(same).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_795_395_723),
            "{same}"
        );
    }
    for bad in [
        "",
        "12.",
        "-5",
        "1h",
        "2026-11-23",
        "2026-11-23 01:02:03 UTC",
    ] {
        assert!(parse_instant(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn query_parameters_are_checked_and_errors_name_them() {
    let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let query = EventQuery::from_params(&params(&[
        ("since", "1795395723"),
        ("until", "2026-11-23T02:00:00Z"),
        ("tracer_name", "oom"),
        ("container", "web-1"),
        ("limit", "5"),
    ]))
    .unwrap();
    assert_eq!(
        query.since,
        Some(UNIX_EPOCH + Duration::from_secs(1_795_395_723))
    );
    assert_eq!(query.tracer_name.as_deref(), Some("oom"));
    assert_eq!(query.container.as_deref(), Some("web-1"));
    assert_eq!(query.limit, 5);
    assert_eq!(
        EventQuery::from_params(&params(&[("container", "")])).unwrap(),
        EventQuery::default()
    );
    for (pairs, names) in [
        (vec![("since", "yesterday")], "`since`"),
        (vec![("until", "2026-13-01T00:00:00Z")], "`until`"),
        (vec![("limit", "0")], "`limit`"),
        (vec![("limit", "10001")], "`limit`"),
        (vec![("limit", "ten")], "`limit`"),
        (vec![("type", "oom")], "`type`"),
        (vec![("limit", "1"), ("limit", "2")], "`limit`"),
        (vec![("since", "200"), ("until", "100")], "`since`"),
    ] {
        let err = EventQuery::from_params(&params(&pairs)).unwrap_err();
        assert!(err.contains(names), "{pairs:?}: {err}");
    }
}

#[test]
fn the_slot_lends_the_open_store() {
    let dir = tempfile::tempdir().unwrap();
    let slot = StoreSlot::default();
    assert!(slot.get().is_none());
    let store = Arc::new(open(&dir, roomy()));
    assert!(slot.replace(Some(store.clone())).is_none());
    assert!(Arc::ptr_eq(&slot.get().unwrap(), &store));
    assert!(slot.replace(None).is_some());
    assert!(slot.get().is_none());
}
