use super::*;
use crate::probes::testutil::{
    assert_lines, collect_text, context, context_at, copy_fixture, expected, real_proc_context,
};

fn probe(config: &MountpointConfig, ctx: &ProbeContext) -> MountpointProbe {
    MountpointProbe::start(config, ctx).unwrap()
}

fn append(root: &std::path::Path, text: &str) {
    let path = root.join("proc/1/mountinfo");
    let mut content = std::fs::read_to_string(&path).unwrap();
    content.push_str(text);
    std::fs::write(path, content).unwrap();
}

#[test]
fn exports_fixture_mounts_v1() {
    let mut p = probe(&MountpointConfig::default(), &context("cgroup-v1"));
    let text = collect_text(&mut p);
    assert_lines(&text, &expected("mountpoint-v1.txt"));
    assert!(!text.contains("/home"), "{text}");
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2);
}

#[test]
fn exports_fixture_mounts_v2() {
    let mut p = probe(&MountpointConfig::default(), &context("cgroup-v2"));
    assert_lines(&collect_text(&mut p), &expected("mountpoint-v2.txt"));
}

#[test]
fn the_last_of_stacked_mounts_wins() {
    let dir = copy_fixture("cgroup-v2");
    // A read-only tmpfs mounted over "/" and a read-write one over the read-only "/boot".
    append(
        dir.path(),
        "60 27 0:60 / / ro,relatime - tmpfs none ro\n61 44 0:61 / /boot rw - tmpfs none rw\n",
    );
    let mut p = probe(&MountpointConfig::default(), &context_at(dir.path()));
    let text = collect_text(&mut p);
    assert_lines(
        &text,
        "huatuo_bamai_mountpoint_perm_ro{mountpoint=\"/\"} 1\n\
         huatuo_bamai_mountpoint_perm_ro{mountpoint=\"/boot\"} 0",
    );
    assert_eq!(text.matches("mountpoint=\"/\"").count(), 1, "{text}");
}

#[test]
fn included_paths_are_exact_and_escapes_are_decoded() {
    let dir = copy_fixture("cgroup-v1");
    append(
        dir.path(),
        "62 27 0:62 / /mnt/my\\040disk ro,noexec - tmpfs none rw\n63 27 0:63 / /mnt/my rw - tmpfs none rw\n",
    );
    let config = MountpointConfig {
        mountpoints_included: vec!["/mnt/my disk".into(), "/sys/fs".into()],
        ..MountpointConfig::default()
    };
    let mut p = probe(&config, &context_at(dir.path()));
    let text = collect_text(&mut p);
    assert_eq!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        vec!["huatuo_bamai_mountpoint_perm_ro{mountpoint=\"/mnt/my disk\"} 1"]
    );
}

#[test]
fn malformed_lines_are_skipped_and_the_rest_exported() {
    let dir = copy_fixture("cgroup-v1");
    append(
        dir.path(),
        "garbage\n70 27 0:70\nx y 0:71 / /home rw - tmpfs none rw\n",
    );
    let mut p = probe(&MountpointConfig::default(), &context_at(dir.path()));
    let text = collect_text(&mut p);
    assert_lines(&text, &expected("mountpoint-v1.txt"));
    assert!(!text.contains("/home"), "{text}");
}

#[test]
fn unreadable_or_garbage_file_is_an_error_naming_it() {
    let dir = copy_fixture("cgroup-v2");
    let path = dir.path().join("proc/1/mountinfo");
    let mut p = probe(&MountpointConfig::default(), &context_at(dir.path()));
    std::fs::write(&path, "garbage\n").unwrap();
    let err = p.collect(&mut MetricSet::default()).unwrap_err();
    assert!(err.to_string().contains("mountinfo"), "{err}");
    std::fs::write(&path, "").unwrap();
    let err = p.collect(&mut MetricSet::default()).unwrap_err();
    assert!(err.to_string().contains("empty file"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = p.collect(&mut MetricSet::default()).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn parses_lines_with_optional_fields() {
    let mount = parse_mountinfo_line(
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
    )
    .unwrap();
    assert_eq!(
        mount,
        Mount {
            mount_point: "/mnt2".into(),
            read_only: false
        }
    );
    // `ro` must be a whole option, not a prefix of another one.
    assert!(
        !parse_mountinfo_line("1 0 0:1 / /x rw,rootcontext=y - tmpfs n ro")
            .unwrap()
            .read_only
    );
    assert_eq!(unescape("/a\\134b\\011c"), "/a\\b\tc");
    assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    assert!(crate::config::Section::validate(&MountpointConfig {
        mountpoints_included: vec!["home".into()],
        ..MountpointConfig::default()
    })
    .unwrap_err()
    .reason
    .contains("mountpoints_included"));
}

#[test]
fn host_root_matches_real_proc_self_mountinfo() {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        eprintln!("no /proc/self/mountinfo here; skipped");
        return;
    };
    // Direct read: the last line mounting "/" and whether its options hold `ro`.
    let Some(root_ro) = info
        .lines()
        .rev()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[4] == "/")
        .map(|f| f[5].split(',').any(|o| o == "ro"))
    else {
        eprintln!("no / mount in /proc/self/mountinfo; skipped");
        return;
    };
    let mut p = probe(&MountpointConfig::default(), &real_proc_context());
    let text = collect_text(&mut p);
    assert_lines(
        &text,
        &format!(
            "huatuo_bamai_mountpoint_perm_ro{{mountpoint=\"/\"}} {}",
            u8::from(root_ro)
        ),
    );
}
