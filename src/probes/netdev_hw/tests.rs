use super::*;

/// A `class/net` tree: a physical device with a driver link, one without rx_missed_errors, and a
/// virtual device (no `device` link) that must be skipped.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("class/net");
    let driver = dir.path().join("bus/pci/drivers/ixgbe");
    std::fs::create_dir_all(&driver).unwrap();
    for (name, physical, missed) in [
        ("eth0", true, Some("42\n")),
        ("eth1", true, None),
        ("veth1", false, Some("7\n")),
    ] {
        let dev = net.join(name);
        std::fs::create_dir_all(dev.join("statistics")).unwrap();
        if physical {
            std::fs::create_dir_all(dev.join("device")).unwrap();
            std::os::unix::fs::symlink(&driver, dev.join("device/driver")).unwrap();
        }
        if let Some(missed) = missed {
            std::fs::write(dev.join("statistics/rx_missed_errors"), missed).unwrap();
        }
    }
    dir
}

#[test]
fn reads_physical_devices_with_their_driver() {
    let dir = fixture();
    let drops = read_hw_drops(&dir.path().join("class/net"), None).unwrap();
    assert_eq!(
        drops,
        vec![HwDrops {
            device: "eth0".into(),
            driver: "ixgbe".into(),
            rx_missed: 42
        }]
    );
}

#[test]
fn device_filter_matches_whole_names() {
    let dir = fixture();
    let filter = device_filter("eth").unwrap();
    let drops = read_hw_drops(&dir.path().join("class/net"), filter.as_ref()).unwrap();
    assert!(drops.is_empty(), "`eth` must not match eth0: {drops:?}");
    let filter = device_filter("eth[0-9]").unwrap();
    let drops = read_hw_drops(&dir.path().join("class/net"), filter.as_ref()).unwrap();
    assert_eq!(drops.len(), 1);
    assert!(device_filter("eth(").is_err());
}

#[test]
fn real_sysfs_matches_the_files() {
    // This host's own devices: every exported value is the file's value.
    let class_net = Path::new("/sys/class/net");
    let Ok(drops) = read_hw_drops(class_net, None) else {
        return;
    };
    for d in drops {
        let text = std::fs::read_to_string(
            class_net
                .join(&d.device)
                .join("statistics/rx_missed_errors"),
        )
        .unwrap();
        assert!(text.trim().parse::<u64>().unwrap() >= d.rx_missed, "{d:?}");
        assert!(class_net.join(&d.device).join("device").exists());
    }
}
