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
        cpu: 0,
        data: mc_event_payload(),
    };
    let data = ras_data(&record, &format);
    assert_eq!((data.dev.as_str(), data.event.as_str()), ("MEM", "EDAC"));
    assert_eq!(data.error_type, "Corrected");
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(info["label"], "DIMM_A1", "info is the record as JSON text");
    // Upstream's keys (ras.go buildRasEdacTracerData), not the kernel's.
    assert_eq!(info["err_msg"], "read error");
    assert_eq!(info["err_count"], 3);
    assert_eq!(info["err_type"], "Corrected");
    assert_eq!(info["mid_layer"], 2);
    assert_eq!(info["low_layer"], 0);
    assert_eq!(info["addr"], 0x1234_5000);
    assert_eq!(info["grain"], 64, "1 << grain_bits");
    assert_eq!(info["driver"], "APEI");
    for kernel_name in ["msg", "error_count", "error_type", "address", "grain_bits"] {
        assert!(info.get(kernel_name).is_none(), "{kernel_name}: {info:#}");
    }
}

#[test]
fn the_document_has_the_shape_of_upstreams_fixture_info_included() {
    let format = Format::parse(MC_EVENT).unwrap();
    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::Edac,
        cpu: 0,
        data: mc_event_payload(),
    };
    let data = ras_data(&record, &format);
    let document = crate::events::EventDocument::new(
        "h",
        "r",
        NAME,
        None,
        0,
        serde_json::to_value(&data).unwrap(),
    );
    let ours = serde_json::to_value(&document).unwrap();
    let upstream: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/upstream/documents/ras.json"
    ))
    .unwrap();
    let mismatches = crate::events::document::shape_mismatches(&upstream, &ours, &[]);
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{ours:#}");
    // `info` is JSON text in both: compare the objects inside.
    let inner = |doc: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(doc["tracer_data"]["info"].as_str().unwrap()).unwrap()
    };
    let mismatches =
        crate::events::document::shape_mismatches(&inner(&upstream), &inner(&ours), &[]);
    assert!(
        mismatches.is_empty(),
        "info: {mismatches:#?}\n{:#}",
        inner(&ours)
    );
    assert_eq!(
        inner(&ours),
        inner(&upstream),
        "the fixture holds this very record"
    );
}

/// Builds a record of `kind` from `(name, offset, bytes)` writes over a zeroed payload.
fn payload(writes: &[(usize, &[u8])]) -> Vec<u8> {
    let mut data = vec![0u8; 128];
    for (offset, bytes) in writes {
        put(&mut data, *offset, bytes);
    }
    data
}

#[test]
fn acpi_aer_thr_and_arm_info_have_upstreams_keys_and_values() {
    let field = |name: &str, ctype: &str, offset: usize, size: usize| Field {
        name: name.into(),
        ctype: ctype.into(),
        offset,
        size,
        signed: false,
    };
    let loc = |off: usize, len: usize| (((len << 16) | off) as u32).to_le_bytes();
    // ras:non_standard_event as this kernel's format lays it out.
    let acpi = Format {
        fields: vec![
            field("sec_type", "char[16]", 8, 16),
            field("fru_id", "char[16]", 24, 16),
            field("fru_text", "__data_loc char[]", 40, 4),
            field("sev", "u8", 44, 1),
            field("len", "u32", 48, 4),
            field("buf", "__data_loc u8[]", 52, 4),
        ],
    };
    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::AcpiGhes,
        cpu: 0,
        data: payload(&[
            (8, &[0xa5; 16]),
            (40, &loc(60, 4)),
            (44, &[2]),
            (48, &3u32.to_le_bytes()),
            (52, &loc(64, 3)),
            (60, b"FRU\0"),
            (64, &[0xde, 0xad, 0x01]),
        ]),
    };
    let data = ras_data(&record, &acpi);
    assert_eq!(
        (data.dev.as_str(), data.event.as_str()),
        ("ACPI", "NON_STANDARD")
    );
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(info["severity"], 2);
    assert_eq!(info["sec_type"], "a5".repeat(16));
    assert_eq!(info["fru_id"], "00".repeat(16));
    assert_eq!(info["fru_text"], "FRU");
    assert_eq!(info["data_len"], 3);
    assert_eq!(info["raw_data"], "de ad 01");

    // ras:aer_event (include/ras/ras_event.h).
    let aer = Format {
        fields: vec![
            field("dev_name", "__data_loc char[]", 8, 4),
            field("status", "u32", 12, 4),
            field("severity", "u8", 16, 1),
            field("tlp_header_valid", "u8", 17, 1),
            field("tlp_header", "u32[4]", 20, 16),
        ],
    };
    let mut header = Vec::new();
    for word in [0x4a00_0001u32, 0x0100_000f, 0xfe00_0000, 0] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::PcieAer,
        cpu: 0,
        data: payload(&[
            (8, &loc(40, 13)),
            (12, &0x40u32.to_le_bytes()),
            (16, &[2, 1]),
            (20, &header),
            (40, b"0000:00:1c.0\0"),
        ]),
    };
    let data = ras_data(&record, &aer);
    assert_eq!(
        (data.dev.as_str(), data.event.as_str()),
        ("PCIe 0000:00:1c.0", "AER")
    );
    assert_eq!(data.error_type, "Corrected");
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(info["dev_name"], "0000:00:1c.0");
    assert_eq!(info["err_type"], "Corrected");
    assert_eq!(info["err_reason"], "Bad TLP");
    assert_eq!(info["tlp_header"], "{0x4a000001,0x100000f,0xfe000000,0x0}");

    // irq_vectors:threshold_apic_entry: the vector and where it ran.
    let thr = Format {
        fields: vec![field("vector", "int", 8, 4)],
    };
    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::Thr,
        cpu: 3,
        data: payload(&[(8, &0xf9u32.to_le_bytes())]),
    };
    let data = ras_data(&record, &thr);
    assert_eq!(
        (data.dev.as_str(), data.event.as_str()),
        ("CPU", "MCE_THRESHOLD")
    );
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(
        (info["vector"].clone(), info["cpu"].clone()),
        (0xf9.into(), 3.into())
    );

    // ras:arm_event: a stopped CPU with its PSCI state.
    let arm = Format {
        fields: vec![
            field("mpidr", "u64", 8, 8),
            field("midr", "u64", 16, 8),
            field("running_state", "u32", 24, 4),
            field("psci_state", "u32", 28, 4),
            field("affinity", "u8", 32, 1),
        ],
    };
    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::ArmGhes,
        cpu: 0,
        data: payload(&[
            (8, &0x8100u64.to_le_bytes()),
            (16, &0x410f_d0c1u64.to_le_bytes()),
            (24, &0u32.to_le_bytes()),
            (28, &0x2u32.to_le_bytes()),
            (32, &[0xff]),
        ]),
    };
    let data = ras_data(&record, &arm);
    assert_eq!(
        (data.dev.as_str(), data.event.as_str()),
        ("CPU", "ARM_GHES")
    );
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(info["mpidr"], "0x8100");
    assert_eq!(info["midr"], "0x410fd0c1");
    assert_eq!(info["running_state"], "stopped");
    assert_eq!(info["psci_state"], "0x2");
    assert_eq!(info["affinity_level"], "N/A");
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
    let mut bytes = vec![0u8; RasRecord::HEADER + 8];
    put(&mut bytes, 0, &77u64.to_le_bytes());
    put(&mut bytes, 8, &1u32.to_le_bytes());
    put(&mut bytes, 12, &8u32.to_le_bytes());
    put(&mut bytes, 16, &5u32.to_le_bytes());
    let record = RasRecord::decode(&bytes).unwrap();
    assert_eq!(
        (record.boot_ns, record.kind, record.cpu, record.data.len()),
        (77, RasKind::Edac, 5, 8)
    );
    assert!(
        RasRecord::decode(&bytes[..RasRecord::HEADER + 4]).is_none(),
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

#[test]
fn mce_info_has_upstreams_msr_names() {
    let format = Format::parse(MCE_RECORD).unwrap();
    let mut data = vec![0u8; 48];
    put(&mut data, 8, &0x1c09u64.to_le_bytes());
    put(&mut data, 24, &(1u64 << 63).to_le_bytes());
    data[40] = 4;
    let record = RasRecord {
        boot_ns: 1,
        kind: RasKind::Mce,
        cpu: 0,
        data,
    };
    let data = ras_data(&record, &format);
    assert_eq!((data.dev.as_str(), data.event.as_str()), ("CPU/MEM", "MCE"));
    let info: serde_json::Value = serde_json::from_str(&data.info).unwrap();
    assert_eq!(info["mcg_cpu_cap"], 0x1c09);
    assert_eq!(info["banks_msr_status"], 1u64 << 63);
    assert_eq!(info["bank"], 4);
    assert!(
        info.get("mcgcap").is_none() && info.get("status").is_none(),
        "{info:#}"
    );
}
