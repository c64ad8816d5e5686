use super::*;

#[test]
fn disk_labels_decode_kernel_dev_t() {
    assert_eq!(disk_label((7 << 20) | 3), "7:3");
    assert_eq!(disk_label((254 << 20) | 16), "254:16");
}

#[test]
fn per_cpu_values_add_up() {
    let mut a = DiskLatency {
        count: 2,
        d2c_sum_ns: 10,
        ..Default::default()
    };
    a.d2c_zone[1] = 1;
    let mut b = DiskLatency {
        count: 3,
        d2c_sum_ns: 5,
        ..Default::default()
    };
    b.d2c_zone[1] = 2;
    a.add(&b);
    assert_eq!((a.count, a.d2c_sum_ns, a.d2c_zone[1]), (5, 15, 3));
}

#[test]
fn value_layout_matches_the_bpf_struct() {
    // 6 + 6 zones, 26 + 26 slots, 2 sums, 1 count.
    assert_eq!(
        std::mem::size_of::<DiskLatency>(),
        (6 + 6 + 26 + 26 + 3) * 8
    );
}
