/* Shared header for every HUATUO BPF program: kernel types (CO-RE), libbpf helpers and small
 * helpers that keep hot paths cheap. Include this first in each probe's .bpf.c. */
#ifndef HUATUO_BPF_H
#define HUATUO_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define HUATUO_NR_ZONES 4

/* Adaptive sampling knob. A probe that can be throttled writes HUATUO_SAMPLING_KNOB once at
 * file scope and asks huatuo_sample_weight() on its hot path: 0 = skip this event, otherwise the
 * weight to count it with. The far end of a begin/end pair counts huatuo_sampling_weight() and
 * drops a begin older than huatuo_sampling_since() (taken before the programs were last
 * re-attached). User space (the shared Rust code finds the map by name, so declaring the knob is
 * all a probe does) writes:
 *   divisor   keep 1 event in `divisor` (1 = every event);
 *   weight    what a kept event counts for: divisor × K when the programs are also attached only
 *             one tick in K (duty cycling, beyond the largest event divisor);
 *   since_ns  bpf_ktime_get_ns() clock of the last re-attach.
 * Counting each kept event `weight` times keeps counters and histograms unbiased without any
 * user-space rescaling. */
struct huatuo_sampling {
	__u32 divisor;
	__u32 weight;
	__u64 since_ns;
};

#define HUATUO_SAMPLING_KNOB                                                                               \
	struct {                                                                                           \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                          \
		__uint(max_entries, 1);                                                                    \
		__type(key, __u32);                                                                        \
		__type(value, struct huatuo_sampling);                                                     \
	} HUATUO_SAMPLING SEC(".maps");                                                                    \
	static __always_inline __attribute__((unused)) struct huatuo_sampling *huatuo_sampling(void)       \
	{                                                                                                  \
		__u32 zero = 0;                                                                            \
		return bpf_map_lookup_elem(&HUATUO_SAMPLING, &zero);                                       \
	}                                                                                                  \
	static __always_inline __attribute__((unused)) __u32 huatuo_sampling_weight(void)                  \
	{                                                                                                  \
		struct huatuo_sampling *s = huatuo_sampling();                                             \
		return s && s->weight > 1 ? s->weight : 1;                                                 \
	}                                                                                                  \
	static __always_inline __attribute__((unused)) __u64 huatuo_sampling_since(void)                   \
	{                                                                                                  \
		struct huatuo_sampling *s = huatuo_sampling();                                             \
		return s ? s->since_ns : 0;                                                                \
	}                                                                                                  \
	static __always_inline __attribute__((unused)) __u32 huatuo_sample_weight(void)                    \
	{                                                                                                  \
		struct huatuo_sampling *s = huatuo_sampling();                                             \
		__u32 weight;                                                                              \
		if (!s)                                                                                    \
			return 1;                                                                          \
		weight = s->weight > 1 ? s->weight : 1;                                                    \
		if (s->divisor <= 1)                                                                       \
			return weight;                                                                     \
		return (bpf_get_prandom_u32() % s->divisor) == 0 ? weight : 0;                             \
	}

/* Bucket a latency into 4 zones given three ascending upper bounds (exclusive). */
static __always_inline __u32 huatuo_zone(__u64 delta, __u64 b0, __u64 b1, __u64 b2)
{
	if (delta < b0)
		return 0;
	if (delta < b1)
		return 1;
	if (delta < b2)
		return 2;
	return 3;
}

/* Log2 histogram slots: slot i counts values in [2^i, 2^(i+1)) of the unit (slot 0 also holds
 * values below 2); the last slot holds everything larger. */
#define HUATUO_LOG2_SLOTS 26

static __always_inline __u32 huatuo_log2_slot(__u64 value)
{
	/* Branch-light floor(log2(value)); a loop here explodes the verifier's state count. */
	__u32 r, shift;

	r = (value > 0xFFFFFFFFULL) << 5;
	value >>= r;
	shift = (value > 0xFFFF) << 4;
	value >>= shift;
	r |= shift;
	shift = (value > 0xFF) << 3;
	value >>= shift;
	r |= shift;
	shift = (value > 0xF) << 2;
	value >>= shift;
	r |= shift;
	shift = (value > 0x3) << 1;
	value >>= shift;
	r |= shift;
	r |= (__u32)(value >> 1);
	return r < HUATUO_LOG2_SLOTS - 1 ? r : HUATUO_LOG2_SLOTS - 1;
}

/* An in-kernel rate limit for event records: at most `max_per_sec` a second (0 = no limit),
 * counted in a one-second window the caller keeps in an array map. Racy across CPUs at the
 * window edge: a few records more at worst. */
struct huatuo_rate_window {
	__u64 second;
	__u64 used;
};

static __always_inline int huatuo_take_token(struct huatuo_rate_window *window, __u32 max_per_sec)
{
	__u64 second;

	if (max_per_sec == 0)
		return 1;
	if (!window)
		return 0;
	second = bpf_ktime_get_ns() / 1000000000ULL;
	if (window->second != second) {
		window->second = second;
		window->used = 0;
	}
	return __sync_fetch_and_add(&window->used, 1) < max_per_sec;
}

/* Cgroup id of the task's css of the cgroup subsystem at `index` (an enum cgroup_subsys_id value
 * resolved from kernel BTF), 0 when there is none: on cgroup v1 that is the task's cgroup in
 * that controller's hierarchy, the kernfs id user space sees as the directory's inode. */
static __always_inline __u64 huatuo_subsys_cgroup_id(struct task_struct *task, int index)
{
	struct cgroup_subsys_state *css;

	if (index < 0 || index >= CGROUP_SUBSYS_COUNT)
		return 0;
	css = BPF_CORE_READ(task, cgroups, subsys[index]);
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

/* The task's memory cgroup id (0 without a memory controller): names the container on cgroup v1
 * hosts without a v2 mount, where every task's default-hierarchy cgroup is the root. */
static __always_inline __u64 huatuo_memcg_id(struct task_struct *task)
{
	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return 0;
	return huatuo_subsys_cgroup_id(task,
				       bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id));
}

/* The task's cpu cgroup id (its task group's css; 0 without a cpu controller). */
static __always_inline __u64 huatuo_cpu_cgroup_id(struct task_struct *task)
{
	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, cpu_cgrp_id))
		return 0;
	return huatuo_subsys_cgroup_id(task,
				       bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id));
}

#endif
