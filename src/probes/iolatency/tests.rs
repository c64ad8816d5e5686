use super::*;

#[test]
fn disk_labels_decode_kernel_dev_t() {
    assert_eq!(disk_label((7 << 20) | 3), "7:3");
    assert_eq!(disk_label((254 << 20) | 16), "254:16");
}

#[test]
fn log2_buckets_have_microsecond_powers_of_two_and_skip_the_open_slot() {
    let mut slots = [0u64; LOG2_SLOTS];
    slots[0] = 4; // < 2 µs
    slots[10] = 2; // [1024, 2048) µs
    slots[LOG2_SLOTS - 1] = 1; // open-ended
    let buckets = log2_us_buckets(&slots);
    assert_eq!(buckets.len(), LOG2_SLOTS - 1);
    assert_eq!(buckets[0], (2e-6, 4));
    assert_eq!(buckets[10], (2048e-6, 2));
    assert_eq!(
        buckets.iter().map(|b| b.1).sum::<u64>(),
        6,
        "the open slot only counts in +Inf"
    );
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
