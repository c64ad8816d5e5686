use super::*;
use crate::config::Section;
use crate::probes::common::ksyms::Symbolizer;

/// A record as sched_tick.bpf.c lays it out, with `frames` as its stack.
fn raw_record(frames: &[u64]) -> Vec<u8> {
    let mut b = vec![0u8; TickRecord::HEADER];
    b[0..8].copy_from_slice(&987_654_321u64.to_le_bytes());
    b[8..16].copy_from_slice(&4_001_234u64.to_le_bytes());
    b[16..20].copy_from_slice(&4242u32.to_le_bytes());
    b[20..24].copy_from_slice(&4243u32.to_le_bytes());
    b[24..28].copy_from_slice(&1u32.to_le_bytes());
    b[28..32].copy_from_slice(&((frames.len() * 8) as u32).to_le_bytes());
    b[32..39].copy_from_slice(b"st-busy");
    for frame in frames {
        b.extend_from_slice(&frame.to_le_bytes());
    }
    b
}

const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81100000 t __hrtimer_run_queues
ffffffff81100400 T hrtimer_interrupt
ffffffff81442960 t tick_nohz_handler
ffffffff81500000 T bpf_trace_run2
ffffffff81600000 d some_data
";

#[test]
fn decodes_every_field_at_its_offset() {
    let record = TickRecord::decode(&raw_record(&[0xffff_ffff_8110_0010, 0xffff_ffff_8110_0420]))
        .expect("decodes");
    assert_eq!(record.boot_ns, 987_654_321);
    assert_eq!(record.interval_ns, 4_001_234);
    assert_eq!((record.pid, record.tid, record.cpu), (4242, 4243, 1));
    assert_eq!(record.comm, "st-busy");
    assert_eq!(
        record.stack,
        vec![0xffff_ffff_8110_0010, 0xffff_ffff_8110_0420]
    );
}

#[test]
fn document_data_has_upstreams_fields_and_stack_text() {
    let frames = [
        0xffff_ffff_8150_0010, // bpf_trace_run2: tracing machinery, left out
        0xffff_ffff_8110_0010,
        0xffff_ffff_8110_0420,
    ];
    let record = TickRecord::decode(&raw_record(&frames)).expect("decodes");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), KALLSYMS).expect("write kallsyms");
    let mut symbolizer = Symbolizer::default();
    symbolizer.resolve(file.path(), &record.stack);
    let data = record.data(10_000_000, &symbolizer);
    assert_eq!(data.tick_interval_ns, 4_001_234);
    assert_eq!(data.tick_interval_threshold_ns, 10_000_000);
    assert_eq!((data.pid, data.tid, data.cpu), (4242, 4243, 1));
    assert_eq!(
        data.stack,
        "stack:\n__hrtimer_run_queues+0x10\nhrtimer_interrupt+0x20"
    );
    let json = serde_json::to_value(&data).expect("serializes");
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "tick_interval_ns",
        "tick_interval_threshold_ns",
        "comm",
        "pid",
        "cpu",
        "stack",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

#[test]
fn an_empty_stack_is_upstreams_bare_prefix() {
    let record = TickRecord::decode(&raw_record(&[])).expect("decodes");
    assert!(record.stack.is_empty());
    assert_eq!(
        record.data(1, &Symbolizer::default()).stack,
        "stack:\n",
        "upstream writes the prefix even without frames"
    );
}

#[test]
fn short_or_garbled_records_are_rejected() {
    let good = raw_record(&[0xffff_ffff_8110_0010, 0xffff_ffff_8110_0420]);
    // Shorter than the header.
    assert_eq!(TickRecord::decode(&good[..TickRecord::HEADER - 1]), None);
    // Shorter than the frames it announces.
    assert_eq!(TickRecord::decode(&good[..good.len() - 1]), None);
    // stack_bytes not whole frames.
    let mut odd = good.clone();
    odd[28..32].copy_from_slice(&15u32.to_le_bytes());
    assert_eq!(TickRecord::decode(&odd), None);
    // More frames than the kernel side ever sends.
    let mut deep = raw_record(&vec![0xffff_ffff_8110_0010; STACK_DEPTH + 1]);
    assert_eq!(TickRecord::decode(&deep), None);
    deep.truncate(TickRecord::HEADER + STACK_DEPTH * 8);
    deep[28..32].copy_from_slice(&((STACK_DEPTH * 8) as u32).to_le_bytes());
    assert_eq!(
        TickRecord::decode(&deep).map(|r| r.stack.len()),
        Some(STACK_DEPTH)
    );
}

#[test]
fn the_tick_function_is_found_under_either_name() {
    assert_eq!(
        tick_function(KALLSYMS),
        Ok(("tick_nohz_handler", 0xffff_ffff_8144_2960))
    );
    let old = "ffffffff81130000 t tick_sched_timer\n";
    assert_eq!(
        tick_function(old),
        Ok(("tick_sched_timer", 0xffff_ffff_8113_0000))
    );
    // Hidden addresses (kptr_restrict) and a missing symbol: a reason naming both names.
    let hidden = "0000000000000000 t tick_nohz_handler\n";
    let reason = tick_function(hidden).expect_err("no usable address");
    assert!(reason.contains("tick_nohz_handler") && reason.contains("tick_sched_timer"));
    assert!(tick_function("").is_err());
    // A data symbol of that name is not the function.
    assert!(tick_function("ffffffff81600000 d tick_nohz_handler\n").is_err());
}

#[test]
fn halves_split_a_64_bit_setting() {
    assert_eq!(halves(0xffff_ffff_8144_2960), (0x8144_2960, 0xffff_ffff));
    assert_eq!(halves(10_000_000), (10_000_000, 0));
}

#[test]
fn config_defaults_follow_upstream_and_zero_threshold_is_rejected() {
    let defaults = SchedTickConfig::default();
    assert!(defaults.enabled);
    assert_eq!(defaults.interval_threshold_ns, 10_000_000);
    assert_eq!(defaults.max_events_per_cpu_per_second, 10);
    assert!(defaults.validate().is_ok());
    let zero = SchedTickConfig {
        interval_threshold_ns: 0,
        ..defaults
    };
    let error = zero.validate().expect_err("0 ns is rejected").to_string();
    assert!(error.contains("interval_threshold_ns"), "{error}");
}
