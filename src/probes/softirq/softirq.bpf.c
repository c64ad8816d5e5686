// SPDX-License-Identifier: GPL-2.0
/* softirq: latency from softirq_raise to softirq_entry, per CPU and vector, in 4 zones
 * (<10us, <100us, <1ms, >=1ms) as upstream HUATUO's system_softirq.c. A softirq runs on the CPU that
 * raised it, so per-CPU arrays need no locking. tp_btf: cheaper than classic tracepoints here. */
#include "huatuo.h"

#define NR_SOFTIRQS_MAX 10

char LICENSE[] SEC("license") = "GPL";

/* Adaptive sampling: 1-in-N raise->entry cycles are timed, each counted N times. */
HUATUO_SAMPLING_KNOB

/* Raise time of a pending vector that was not sampled (real times are never this small). */
#define RAISE_NOT_SAMPLED 1

/* First raise time of each pending vector on this CPU (0 = not pending). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SOFTIRQS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} SOFTIRQ_RAISE_TS SEC(".maps");

/* Counters indexed by vector * HUATUO_NR_ZONES + zone. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SOFTIRQS_MAX * HUATUO_NR_ZONES);
	__type(key, __u32);
	__type(value, __u64);
} SOFTIRQ_LATENCY SEC(".maps");

/* Per vector: log2 histogram of latencies in µs (HUATUO_LOG2_SLOTS slots), then the sum in ns. */
#define SOFTIRQ_HIST_STRIDE (HUATUO_LOG2_SLOTS + 1)
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SOFTIRQS_MAX * SOFTIRQ_HIST_STRIDE);
	__type(key, __u32);
	__type(value, __u64);
} SOFTIRQ_HISTOGRAM SEC(".maps");

SEC("tp_btf/softirq_raise")
int BPF_PROG(on_softirq_raise, unsigned int vec_nr)
{
	__u32 key = vec_nr;
	__u64 *ts = bpf_map_lookup_elem(&SOFTIRQ_RAISE_TS, &key);

	/* Decide once per pending cycle, at the first raise, so later raises of the same cycle
	 * cannot bias the sample towards shorter latencies. */
	if (ts && *ts == 0)
		*ts = huatuo_sample_weight() ? bpf_ktime_get_ns() : RAISE_NOT_SAMPLED;
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(on_softirq_entry, unsigned int vec_nr)
{
	__u32 key = vec_nr;
	__u64 *ts = bpf_map_lookup_elem(&SOFTIRQ_RAISE_TS, &key);
	__u64 *count, start, latency, weight;

	if (!ts || *ts == 0 || vec_nr >= NR_SOFTIRQS_MAX)
		return 0;
	start = *ts;
	*ts = 0;
	if (start == RAISE_NOT_SAMPLED || start < huatuo_sampling_since())
		return 0;
	weight = huatuo_sampling_weight();
	latency = bpf_ktime_get_ns() - start;
	key = vec_nr * HUATUO_NR_ZONES + huatuo_zone(latency, 10 * 1000, 100 * 1000, 1000 * 1000);
	count = bpf_map_lookup_elem(&SOFTIRQ_LATENCY, &key);
	if (count)
		*count += weight;
	key = vec_nr * SOFTIRQ_HIST_STRIDE + huatuo_log2_slot(latency / 1000);
	count = bpf_map_lookup_elem(&SOFTIRQ_HISTOGRAM, &key);
	if (count)
		*count += weight;
	key = vec_nr * SOFTIRQ_HIST_STRIDE + HUATUO_LOG2_SLOTS;
	count = bpf_map_lookup_elem(&SOFTIRQ_HISTOGRAM, &key);
	if (count)
		*count += latency * weight;
	return 0;
}
