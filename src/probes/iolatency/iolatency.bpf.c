// SPDX-License-Identifier: GPL-2.0
/* iolatency: block request latency per disk, Q2C (request created -> completed) and D2C
 * (issued to the driver -> completed), as upstream's iolatency_tracing.c zones (>=20 ms only)
 * plus log2 histograms of every completion. Tracepoint-only: tp_btf block_rq_issue and
 * block_rq_complete; Q uses the request's own start_time_ns (set when the queue keeps I/O
 * statistics), falling back to the issue time. Reads and writes only (as /proc/diskstats). */
#include "huatuo.h"

#define REQ_OP_MASK 0xff
#define IO_ZONES 6
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_USEC 1000ULL

char LICENSE[] SEC("license") = "GPL";

/* Adaptive sampling: 1-in-N issued requests are timed, each counted N times. */
HUATUO_SAMPLING_KNOB

/* Issue time of in-flight requests, by request address. LRU: a request whose completion we
 * never see (driver reset) cannot leak. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} IO_ISSUED SEC(".maps");

struct disk_latency {
	__u64 q2c_zone[IO_ZONES];
	__u64 d2c_zone[IO_ZONES];
	__u64 q2c_slot[HUATUO_LOG2_SLOTS];
	__u64 d2c_slot[HUATUO_LOG2_SLOTS];
	__u64 q2c_sum_ns;
	__u64 d2c_sum_ns;
	__u64 count;
};

/* Key: the disk's dev_t (major << 20 | first minor), as the kernel encodes dev_t. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct disk_latency);
} IO_DISK_LATENCY SEC(".maps");

/* Containers' block cgroup ids (the blkio hierarchy on cgroup v1, the unified one on v2),
 * filled by user space from discovery. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} IO_WATCHED_CGROUPS SEC(".maps");

struct cgroup_disk {
	__u64 cgroup_id;
	__u32 dev;
	__u32 pad;
};

struct cgroup_latency {
	__u64 q2c_zone[IO_ZONES];
	__u64 d2c_zone[IO_ZONES];
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct cgroup_disk);
	__type(value, struct cgroup_latency);
} IO_CGROUP_LATENCY SEC(".maps");

/* An all-zero value to create new entries from (too large for the 512-byte BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct disk_latency);
} IO_ZERO SEC(".maps");

/* Upstream zones: 20-30, 30-50, 50-100, 100-200, 200-400, >400 ms; below 20 ms: none. */
static __always_inline int io_zone(__u64 ns)
{
	__u64 ms = ns / NSEC_PER_MSEC;

	if (ms < 20)
		return -1;
	if (ms < 30)
		return 0;
	if (ms < 50)
		return 1;
	if (ms < 100)
		return 2;
	if (ms < 200)
		return 3;
	if (ms < 400)
		return 4;
	return 5;
}

/* Attributes a completion to the block cgroup of the request's first bio (the submitter's). */
static __always_inline void count_cgroup(struct request *rq, __u32 dev, __u64 q2c, __u64 d2c,
					  __u32 weight)
{
	struct cgroup_disk key = { .dev = dev };
	struct cgroup_latency *lat, fresh = {};
	int zone;

	key.cgroup_id = BPF_CORE_READ(rq, bio, bi_blkg, blkcg, css.cgroup, kn, id);
	if (!key.cgroup_id || !bpf_map_lookup_elem(&IO_WATCHED_CGROUPS, &key.cgroup_id))
		return;
	lat = bpf_map_lookup_elem(&IO_CGROUP_LATENCY, &key);
	if (!lat) {
		bpf_map_update_elem(&IO_CGROUP_LATENCY, &key, &fresh, BPF_NOEXIST);
		lat = bpf_map_lookup_elem(&IO_CGROUP_LATENCY, &key);
		if (!lat)
			return;
	}
	zone = io_zone(q2c);
	if (zone >= 0 && zone < IO_ZONES)
		lat->q2c_zone[zone] += weight;
	zone = io_zone(d2c);
	if (zone >= 0 && zone < IO_ZONES)
		lat->d2c_zone[zone] += weight;
	lat->count += weight;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(on_block_rq_issue, struct request *rq)
{
	__u64 key = (__u64)rq, now;

	if (!huatuo_sample_weight())
		return 0;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&IO_ISSUED, &key, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(on_block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_ns(), q2c, d2c, start;
	struct disk_latency *lat, *zero;
	__u32 zero_key = 0;
	struct gendisk *disk;
	__u64 *issued;
	__u32 op, dev, slot, weight;
	int zone;

	issued = bpf_map_lookup_elem(&IO_ISSUED, &key);
	if (!issued)
		return 0;
	d2c = *issued;
	bpf_map_delete_elem(&IO_ISSUED, &key);
	/* Issued before a duty-cycle pause: its latency was not all watched. */
	if (d2c < huatuo_sampling_since())
		return 0;
	d2c = now - d2c;
	/* Only sampled requests are in IO_ISSUED: each stands for `weight` requests. */
	weight = huatuo_sampling_weight();
	op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;
	if (op > 1) /* flush, discard, zone ops: not in diskstats' read/write counts */
		return 0;
	start = BPF_CORE_READ(rq, start_time_ns);
	q2c = (start && start < now) ? now - start : d2c;
	if (q2c < d2c)
		q2c = d2c;
	disk = BPF_CORE_READ(rq, q, disk);
	if (!disk)
		return 0;
	dev = ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);

	lat = bpf_map_lookup_elem(&IO_DISK_LATENCY, &dev);
	if (!lat) {
		zero = bpf_map_lookup_elem(&IO_ZERO, &zero_key);
		if (!zero)
			return 0;
		bpf_map_update_elem(&IO_DISK_LATENCY, &dev, zero, BPF_NOEXIST);
		lat = bpf_map_lookup_elem(&IO_DISK_LATENCY, &dev);
		if (!lat)
			return 0;
	}
	zone = io_zone(q2c);
	if (zone >= 0 && zone < IO_ZONES)
		lat->q2c_zone[zone] += weight;
	zone = io_zone(d2c);
	if (zone >= 0 && zone < IO_ZONES)
		lat->d2c_zone[zone] += weight;
	slot = huatuo_log2_slot(q2c / NSEC_PER_USEC);
	if (slot < HUATUO_LOG2_SLOTS)
		lat->q2c_slot[slot] += weight;
	slot = huatuo_log2_slot(d2c / NSEC_PER_USEC);
	if (slot < HUATUO_LOG2_SLOTS)
		lat->d2c_slot[slot] += weight;
	lat->q2c_sum_ns += q2c * weight;
	lat->d2c_sum_ns += d2c * weight;
	lat->count += weight;
	count_cgroup(rq, dev, q2c, d2c, weight);
	return 0;
}
