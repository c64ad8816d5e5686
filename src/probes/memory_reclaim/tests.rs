use super::*;
use crate::config::Section;

/// A record as memory_reclaim.bpf.c lays it out.
fn raw_record(kind: u32) -> Vec<u8> {
    let mut b = vec![0u8; ReclaimRecord::SIZE];
    b[0..8].copy_from_slice(&5_000u64.to_le_bytes());
    b[8..16].copy_from_slice(&11u64.to_le_bytes());
    b[16..24].copy_from_slice(&12u64.to_le_bytes());
    b[24..32].copy_from_slice(&950_000_000u64.to_le_bytes());
    b[32..36].copy_from_slice(&101u32.to_le_bytes());
    b[36..40].copy_from_slice(&100u32.to_le_bytes());
    b[40..44].copy_from_slice(&kind.to_le_bytes());
    b[48..52].copy_from_slice(b"java");
    b
}

#[test]
fn decodes_a_memcg_reclaim_record() {
    let record = ReclaimRecord::decode(&raw_record(1)).expect("decodes");
    assert_eq!(
        record,
        ReclaimRecord {
            boot_ns: 5_000,
            cgroup_id: 11,
            memcg_id: 12,
            duration_ns: 950_000_000,
            tid: 101,
            pid: 100,
            kind: ReclaimKind::Memcg,
            comm: "java".into(),
        }
    );
    assert_eq!(
        ReclaimRecord::decode(&raw_record(0)).unwrap().kind,
        ReclaimKind::Direct
    );
}

#[test]
fn short_records_and_unknown_kinds_are_rejected() {
    let raw = raw_record(0);
    assert!(ReclaimRecord::decode(&raw[..ReclaimRecord::SIZE - 1]).is_none());
    assert!(ReclaimRecord::decode(&raw_record(2)).is_none());
}

#[test]
fn threshold_must_fit_the_kernels_microsecond_u32() {
    assert!(MemoryReclaimConfig::default().validate().is_ok());
    let too_long = MemoryReclaimConfig {
        event_threshold_ms: MAX_THRESHOLD_MS + 1,
        ..Default::default()
    };
    let err = too_long.validate().unwrap_err();
    assert!(err.reason.contains("event_threshold_ms"), "{err}");
    let fast = MemoryReclaimConfig {
        interval_ms: 50,
        ..Default::default()
    };
    assert!(fast.validate().is_err());
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture() {
    let record = ReclaimRecord::decode(&raw_record(1)).expect("decodes");
    let document = crate::events::EventDocument::new(
        "h",
        "r",
        NAME,
        None,
        record.cgroup_id,
        serde_json::to_value(record.data()).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    assert_eq!(ours["tracer_data"]["reclaim_duration_ns"], 950_000_000);
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/memory_reclaim.json"
    ))
    .unwrap();
    let optional = crate::events::document::upstream_omitempty(NAME);
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &optional);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
}
