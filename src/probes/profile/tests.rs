//! Pure parts of the profile probe: kernel records, symbol tables, assembly, settings.

use super::*;
use crate::config::Section;
use crate::containers::ContainerSet;
use crate::profiling::Frame;

#[test]
fn kernel_record_layouts_match_profile_bpf_c() {
    assert_eq!(std::mem::size_of::<SampleKey>(), 32);
    assert_eq!(std::mem::size_of::<SampleValue>(), 32);
    assert_eq!(comm(b"busy\0\0garbage\0\0\0"), "busy");
    assert_eq!(comm(b"0123456789abcdef"), "0123456789abcdef");
}

#[test]
fn kallsyms_resolve_to_the_enclosing_text_symbol_with_its_module() {
    let table = KernelSymbols::parse(
        "ffffffff81000000 T _stext\n\
         ffffffff81001000 t do_idle\n\
         ffffffff81002000 D some_data\n\
         ffffffffc0000000 t nf_hook [nf_tables]\n\
         0000000000000000 T hidden\n",
    );
    let f = table.frame(0xffffffff81001010);
    assert_eq!(
        (f.function.as_str(), f.module.as_deref()),
        ("do_idle", Some("[kernel]"))
    );
    // Data symbols do not end a function.
    assert_eq!(table.frame(0xffffffff81002010).function, "do_idle");
    let m = table.frame(0xffffffffc0000004);
    assert_eq!(
        (m.function.as_str(), m.module.as_deref()),
        ("nf_hook", Some("nf_tables"))
    );
    assert_eq!(table.frame(0x1000).function, "[unknown]");
    assert!(table.frame(0x1000).kernel);
}

#[test]
fn maps_give_the_module_of_an_unresolved_address() {
    let maps = parse_maps(
        "55d0c0000000-55d0c0001000 r-xp 00000000 fd:00 123 /usr/bin/busy\n\
         7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n\
         7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n",
    );
    assert_eq!(maps.len(), 2);
    assert_eq!(
        symbolize::module_of(&maps, 0x55d0c0000800).as_deref(),
        Some("/usr/bin/busy")
    );
    assert_eq!(symbolize::module_of(&maps, 0x7f0000000010), None);
}

fn raw(kind: ProfileKind, cgroup: u64, count: u64, value_ns: u64) -> RawSample {
    RawSample {
        kind,
        tgid: 42,
        pid: 43,
        cgroup,
        comm: "busy".into(),
        count,
        value_ns,
        user: vec![0x10],
        kernel: vec![],
    }
}

fn frame(function: &str, kernel: bool) -> Frame {
    Frame {
        function: function.into(),
        module: None,
        kernel,
        address: 1,
    }
}

#[test]
fn assembly_keeps_one_kind_drops_tracing_frames_and_labels_containers() {
    let mut container = crate::containers::Container::from_cgroup(
        "abc",
        7,
        "/docker/abc",
        crate::containers::Runtime::Docker,
        crate::containers::Qos::Unknown,
    );
    container.cpu_cgroup_id = 99;
    container.name = "web".into();
    let set = ContainerSet::new(vec![container]);
    let samples = vec![
        raw(ProfileKind::Cpu, 99, 5, 0),
        raw(ProfileKind::OffCpu, 99, 2, 3_000_000),
        raw(ProfileKind::Cpu, 1, 1, 0),
    ];
    let frames = vec![
        vec![
            frame("bpf_prog_abc_on_cpu_clock", true),
            frame("spin", false),
        ],
        vec![frame("schedule", true)],
        vec![frame("other", false)],
    ];
    let meta = WindowMeta {
        kind: ProfileKind::Cpu,
        start_unix_ns: 1,
        duration_ns: 2,
        frequency_hz: 100,
        host: "h".into(),
    };
    let p = assemble(&meta, &samples, frames.clone(), &set, container_key(true));
    assert_eq!(p.samples.len(), 2);
    assert_eq!(p.samples[0].frames, vec![frame("spin", false)]);
    assert_eq!(p.samples[0].value_ns, 5 * 10_000_000);
    assert_eq!(p.samples[0].labels.container_name.as_deref(), Some("web"));
    assert_eq!(p.samples[0].labels.pid, 42);
    assert_eq!(p.samples[1].labels.container_id, None);
    let off = WindowMeta {
        kind: ProfileKind::OffCpu,
        ..meta
    };
    let p = assemble(&off, &samples, frames, &set, container_key(true));
    assert_eq!(p.samples.len(), 1);
    assert_eq!(p.samples[0].value_ns, 3_000_000);
    assert_eq!(p.frequency_hz, 0);
}

#[test]
fn settings_name_the_bad_key() {
    let ok = ProfileConfig::default();
    assert!(ok.validate().is_ok());
    let bad = |c: ProfileConfig| c.validate().map(|_| ()).unwrap_err().to_string();
    let err = bad(ProfileConfig {
        offcpu_phase: "sleepy".into(),
        ..ok.clone()
    });
    assert!(
        err.contains("offcpu_phase") && err.contains("sleepy"),
        "{err}"
    );
    let err = bad(ProfileConfig {
        frequency_hz: 0,
        ..ok.clone()
    });
    assert!(err.contains("frequency_hz"), "{err}");
    let err = bad(ProfileConfig {
        max_stacks: 1,
        ..ok
    });
    assert!(err.contains("max_stacks"), "{err}");
}
