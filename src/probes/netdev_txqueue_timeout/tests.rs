use super::*;

/// net:net_dev_xmit_timeout's format as this development kernel (6.18) has it.
const FORMAT: &str = include_str!("../../../tests/fixtures/tracefs/net_dev_xmit_timeout.format");

/// A record laid out by the format: the fixed part, then the two `__data_loc` strings.
fn record(name: &[u8], driver: &[u8], queue: i32) -> TimeoutRecord {
    let format = Format::parse(FORMAT).unwrap();
    let offset = |field: &str| {
        format
            .fields
            .iter()
            .find(|f| f.name == field)
            .unwrap()
            .offset
    };
    let mut data = vec![0u8; TimeoutRecord::DATA_MAX];
    let strings = 20;
    let loc = |off: usize, len: usize| (((len << 16) | off) as u32).to_le_bytes();
    data[offset("name")..offset("name") + 4].copy_from_slice(&loc(strings, name.len()));
    let driver_at = strings + name.len();
    data[offset("driver")..offset("driver") + 4].copy_from_slice(&loc(driver_at, driver.len()));
    data[offset("queue_index")..offset("queue_index") + 4].copy_from_slice(&queue.to_le_bytes());
    data[strings..strings + name.len()].copy_from_slice(name);
    data[driver_at..driver_at + driver.len()].copy_from_slice(driver);
    TimeoutRecord { boot_ns: 5, data }
}

fn ring_bytes(record: &TimeoutRecord) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&record.boot_ns.to_le_bytes());
    bytes.extend_from_slice(&(record.data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0u8; 4]);
    bytes.extend_from_slice(&record.data);
    bytes
}

#[test]
fn a_record_decodes_by_the_real_format() {
    let format = Format::parse(FORMAT).unwrap();
    assert_eq!(
        format
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["name", "driver", "queue_index"]
    );
    let raw = ring_bytes(&record(b"eth0\0", b"virtio_net\0", 3));
    let decoded = TimeoutRecord::decode(&raw).expect("ring record decodes");
    assert_eq!(decoded.boot_ns, 5);
    let data = timeout_data(&decoded, &format).unwrap();
    assert_eq!(
        data,
        TxqueueTimeoutData {
            queue_index: 3,
            device_name: "eth0".into(),
            driver_name: "virtio_net".into(),
        }
    );
}

#[test]
fn short_or_garbled_records_are_errors_naming_the_field() {
    let format = Format::parse(FORMAT).unwrap();
    let raw = ring_bytes(&record(b"eth0\0", b"e1000\0", 0));
    assert!(TimeoutRecord::decode(&raw[..TimeoutRecord::HEADER + 10]).is_none());
    let mut too_long = raw.clone();
    too_long[8..12].copy_from_slice(&4096u32.to_le_bytes());
    assert!(TimeoutRecord::decode(&too_long).is_none());
    // The copy stopped before queue_index.
    let cut = TimeoutRecord {
        boot_ns: 0,
        data: record(b"eth0\0", b"e1000\0", 0).data[..16].to_vec(),
    };
    let err = timeout_data(&cut, &format).unwrap_err();
    assert!(err.contains("queue_index"), "{err}");
    let negative = record(b"eth0\0", b"e1000\0", -1);
    assert!(timeout_data(&negative, &format).unwrap_err().contains("-1"));
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture() {
    let format = Format::parse(FORMAT).unwrap();
    let data = timeout_data(&record(b"eth1\0", b"ixgbe\0", 7), &format).unwrap();
    let document = crate::events::EventDocument::new(
        "h",
        "r",
        NAME,
        None,
        0,
        serde_json::to_value(&data).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    assert_eq!(ours["tracer_data"]["queue_index"], 7);
    assert_eq!(ours["tracer_data"]["driver_name"], "ixgbe");
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/netdev_txqueue_timeout.json"
    ))
    .unwrap();
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &[]);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
}

#[test]
fn a_kernel_without_the_tracepoint_makes_the_probe_inactive() {
    let root = tempfile::tempdir().unwrap();
    let ctx = crate::probes::testutil::context_at(root.path());
    let err = NetdevTxqueueTimeoutProbe::start(&Default::default(), &ctx)
        .err()
        .expect("no tracefs here");
    assert!(err.is_unsupported(), "{err}");
    assert!(err.to_string().contains("net_dev_xmit_timeout"), "{err}");
}
