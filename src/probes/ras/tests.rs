use super::*;

/// ras:mc_event's format as this development kernel (6.18) has it.
const MC_EVENT: &str = include_str!("../../../tests/fixtures/tracefs/ras_mc_event.format");

/// The part of mce:mce_record's format (arch/x86/include/trace/events/mce.h) the type needs.
const MCE_RECORD: &str = "name: mce_record\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:u64 mcgcap;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:u64 status;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:u8 bank;\toffset:40;\tsize:1;\tsigned:0;\n\
\tfield:char vendor_tag[4];\toffset:41;\tsize:4;\tsigned:0;\n";

fn put(data: &mut [u8], offset: usize, bytes: &[u8]) {
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A mc_event record laid out by its format: a corrected DIMM error.
fn mc_event_payload() -> Vec<u8> {
    let mut data = vec![0u8; 128];
    put(&mut data, 8, &0u32.to_le_bytes()); // error_type: HW_EVENT_ERR_CORRECTED
    let (msg, label, driver) = (b"read error\0", b"DIMM_A1\0", b"APEI\0");
    let loc = |off: usize, len: usize| ((len << 16) | off) as u32;
    put(&mut data, 12, &loc(64, msg.len()).to_le_bytes());
    put(&mut data, 16, &loc(80, label.len()).to_le_bytes());
    put(&mut data, 20, &3u16.to_le_bytes()); // error_count
    data[22] = 1; // mc_index
    data[23] = 0xff; // top_layer -1
    data[24] = 2;
    data[25] = 0;
    put(&mut data, 32, &0x1234_5000i64.to_le_bytes());
    data[40] = 6;
    put(&mut data, 48, &(-2i64).to_le_bytes());
    put(&mut data, 56, &loc(96, driver.len()).to_le_bytes());
    put(&mut data, 64, msg);
    put(&mut data, 80, label);
    put(&mut data, 96, driver);
    data
}

#[test]
fn mc_event_decodes_by_its_format() {
    let format = Format::parse(MC_EVENT).unwrap();
    assert!(format.fields.iter().all(|f| !f.name.starts_with("common_")));
    let info = format.decode(&mc_event_payload());
    assert_eq!(info["error_type"], 0);
    assert_eq!(info["msg"], "read error");
    assert_eq!(info["label"], "DIMM_A1");
    assert_eq!(info["error_count"], 3);
    assert_eq!(info["mc_index"], 1);
    assert_eq!(info["top_layer"], -1, "s8 sign-extended");
    assert_eq!(info["middle_layer"], 2);
    assert_eq!(info["address"], 0x1234_5000);
    assert_eq!(info["grain_bits"], 6);
    assert_eq!(info["syndrome"], -2);
    assert_eq!(info["driver_detail"], "APEI");
    assert!(info.get("truncated").is_none());

    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::Edac,
        data: mc_event_payload(),
    };
    let data = ras_data(&record, &format);
    assert_eq!((data.dev.as_str(), data.event.as_str()), ("MEM", "EDAC"));
    assert_eq!(data.error_type, "Corrected");
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(info["label"], "DIMM_A1", "info is the record as JSON text");
}

#[test]
fn a_short_copy_lists_the_fields_it_could_not_hold() {
    let format = Format::parse(MC_EVENT).unwrap();
    let info = format.decode(&mc_event_payload()[..36]);
    assert_eq!(info["error_count"], 3);
    let truncated: Vec<&str> = info["truncated"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    // msg/label point past the copy; the fields after offset 36 are missing.
    assert_eq!(
        truncated,
        [
            "msg",
            "label",
            "address",
            "grain_bits",
            "syndrome",
            "driver_detail"
        ]
    );
}

#[test]
fn mce_status_bits_give_upstreams_types() {
    let format = Format::parse(MCE_RECORD).unwrap();
    let mut data = vec![0u8; 48];
    put(&mut data, 41, b"AMD\0");
    for (status, expected) in [
        (1u64 << 63, "Corrected"),
        ((1u64 << 63) | (1 << 44), "UncorrectedDeferred"),
        ((1u64 << 63) | (1 << 61), "UncorrectedRecoverable"),
        ((1u64 << 63) | (1 << 61) | (1 << 57), "UncorrectedFatal"),
    ] {
        put(&mut data, 24, &status.to_le_bytes());
        let info = format.decode(&data);
        assert_eq!(info["vendor_tag"], "AMD");
        assert_eq!(RasKind::Mce.error_type(&info), expected, "{status:#x}");
    }
    assert_eq!(RasKind::Mce.error_type(&serde_json::Map::new()), "unknown");
}

#[test]
fn severities_of_the_other_kinds() {
    let with = |key: &str, v: i64| {
        let mut m = serde_json::Map::new();
        m.insert(key.into(), v.into());
        m
    };
    assert_eq!(
        RasKind::PcieAer.error_type(&with("severity", 1)),
        "UncorrectedFatal"
    );
    assert_eq!(
        RasKind::PcieAer.error_type(&with("severity", 2)),
        "Corrected"
    );
    assert_eq!(
        RasKind::AcpiGhes.error_type(&with("sev", 2)),
        "UncorrectedRecoverable"
    );
    assert_eq!(RasKind::Edac.error_type(&with("error_type", 4)), "Info");
    assert_eq!(RasKind::Edac.error_type(&with("error_type", 9)), "unknown");
}

#[test]
fn ring_records_reject_short_or_unknown_ones() {
    let mut bytes = vec![0u8; 16 + 8];
    put(&mut bytes, 0, &77u64.to_le_bytes());
    put(&mut bytes, 8, &1u32.to_le_bytes());
    put(&mut bytes, 12, &8u32.to_le_bytes());
    let record = RasRecord::decode(&bytes).unwrap();
    assert_eq!(
        (record.boot_ns, record.kind, record.data.len()),
        (77, RasKind::Edac, 8)
    );
    assert!(
        RasRecord::decode(&bytes[..20]).is_none(),
        "len past the record"
    );
    put(&mut bytes, 8, &6u32.to_le_bytes());
    assert!(RasRecord::decode(&bytes).is_none(), "unknown kind");
    put(&mut bytes, 8, &1u32.to_le_bytes());
    put(&mut bytes, 12, &513u32.to_le_bytes());
    assert!(RasRecord::decode(&bytes).is_none(), "over 512 bytes");
}

#[test]
fn bad_formats_are_errors_naming_the_line() {
    let err = Format::parse("\tfield:int x;\toffset:zz;\tsize:4;\tsigned:1;\n").unwrap_err();
    assert!(
        err.contains("offset:") && err.contains("field:int x"),
        "{err}"
    );
    assert!(Format::parse("name: x\n")
        .unwrap_err()
        .contains("no fields"));
}

#[test]
fn kinds_are_found_where_the_tracepoint_exists() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("kernel/tracing/events/ras/mc_event");
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(events.join("format"), MC_EVENT).unwrap();
    let kinds = available_kinds(dir.path()).unwrap();
    assert_eq!(kinds.len(), 1);
    assert_eq!(kinds[0].0, RasKind::Edac);
    let empty = tempfile::tempdir().unwrap();
    assert!(available_kinds(empty.path()).unwrap().is_empty());
}
