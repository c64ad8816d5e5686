// SPDX-License-Identifier: GPL-2.0
/* runqlat: time a task waits on a run queue, from wakeup (or involuntary preemption) until it is
 * switched in, counted in 4 zones (<10ms, <20ms, <50ms, >=50ms) as upstream's cpu_runqlat_tracing.c,
 * for the host and, per container, for the cgroups user space asks for (RUNQ_WATCHED_CGROUPS). */
#include "huatuo.h"

#define TASK_RUNNING 0
#define NSEC_PER_MSEC 1000000ULL
#define MAX_WATCHED_CGROUPS 8192

char LICENSE[] SEC("license") = "GPL";

/* Set at load on cgroup v1 and hybrid hosts: containers are keyed by the task's cpu css cgroup
 * (upstream keys by task->sched_task_group, the same css) instead of its default-hierarchy
 * cgroup, which is the root (or outside the container) there. */
const volatile __u32 key_by_cpu_css = 0;

/* Adaptive sampling: 1-in-N enqueues are timed, each counted N times. */
HUATUO_SAMPLING_KNOB

/* [0] = non-zero while user space watches any container: skips the per-container work (and
 * the cgroup reads) otherwise. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} RUNQ_WATCHING SEC(".maps");

/* Enqueue time (ns) of a queued task, 0 when not queued (or not sampled), in the task's own
 * local storage: a pointer chase instead of a hash lookup on the hottest path, no table to
 * fill up, and the kernel frees it when the task exits. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} RUNQ_ENQUEUED SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HUATUO_NR_ZONES);
	__type(key, __u32);
	__type(value, __u64);
} RUNQ_HOST_LATENCY SEC(".maps");

/* Log2 histogram of every run-queue wait in µs (slots 0..HUATUO_LOG2_SLOTS-1), then the
 * sum of waits in ns at index HUATUO_LOG2_SLOTS. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HUATUO_LOG2_SLOTS + 1);
	__type(key, __u32);
	__type(value, __u64);
} RUNQ_HOST_HISTOGRAM SEC(".maps");

/* Container cgroup ids (default hierarchy ids, or cpu hierarchy ids with key_by_cpu_css) to
 * count per container; filled by user space from container discovery so other cgroups cost one
 * lookup and no memory. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WATCHED_CGROUPS);
	__type(key, __u64);
	__type(value, __u8);
} RUNQ_WATCHED_CGROUPS SEC(".maps");

struct zone_counts {
	__u64 zone[HUATUO_NR_ZONES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_WATCHED_CGROUPS);
	__type(key, __u64);
	__type(value, struct zone_counts);
} RUNQ_CGROUP_LATENCY SEC(".maps");

static __always_inline void record_enqueue(struct task_struct *p)
{
	__u64 *enqueued;

	if (p->pid == 0 || !huatuo_sample_weight())
		return;
	enqueued = bpf_task_storage_get(&RUNQ_ENQUEUED, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (enqueued)
		*enqueued = bpf_ktime_get_ns();
}

static __always_inline void count_cgroup(struct task_struct *p, __u32 zone, __u32 weight)
{
	struct zone_counts *counts, fresh = {};
	__u64 cgroup_id;

	/* The task's cgroup on the default hierarchy: what bpf_get_current_cgroup_id() reports.
	 * Plain loads: tp_btf programs run under RCU, so the verifier accepts direct reads of
	 * these RCU pointers (cheaper than four bpf_probe_read_kernel calls on a hot path). The
	 * css walk indexes subsys[] by a BTF-resolved value, which needs the probe reads. */
	if (key_by_cpu_css)
		cgroup_id = huatuo_cpu_cgroup_id(p);
	else
		cgroup_id = p->cgroups->dfl_cgrp->kn->id;
	if (!bpf_map_lookup_elem(&RUNQ_WATCHED_CGROUPS, &cgroup_id))
		return;
	counts = bpf_map_lookup_elem(&RUNQ_CGROUP_LATENCY, &cgroup_id);
	if (!counts) {
		bpf_map_update_elem(&RUNQ_CGROUP_LATENCY, &cgroup_id, &fresh, BPF_NOEXIST);
		counts = bpf_map_lookup_elem(&RUNQ_CGROUP_LATENCY, &cgroup_id);
		if (!counts)
			return;
	}
	if (zone < HUATUO_NR_ZONES)
		counts->zone[zone] += weight;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	record_enqueue(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_sched_wakeup_new, struct task_struct *p)
{
	record_enqueue(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 *enqueued, *count, wait;
	__u32 zone, slot, zero = 0, *watching, weight;

	/* A task preempted while runnable goes straight back on the run queue. */
	if (prev_state == TASK_RUNNING)
		record_enqueue(prev);

	/* No create: a task never timed has no storage and costs one pointer test. */
	enqueued = bpf_task_storage_get(&RUNQ_ENQUEUED, next, 0, 0);
	if (!enqueued || *enqueued == 0)
		return 0;
	wait = *enqueued;
	*enqueued = 0;
	/* Enqueued before a duty-cycle pause: its wait was not all watched. */
	if (wait < huatuo_sampling_since())
		return 0;
	wait = bpf_ktime_get_ns() - wait;
	zone = huatuo_zone(wait, 10 * NSEC_PER_MSEC, 20 * NSEC_PER_MSEC, 50 * NSEC_PER_MSEC);
	/* Only sampled enqueues were timed: each stands for `weight` waits. */
	weight = huatuo_sampling_weight();
	count = bpf_map_lookup_elem(&RUNQ_HOST_LATENCY, &zone);
	if (count)
		*count += weight;
	slot = huatuo_log2_slot(wait / 1000);
	count = bpf_map_lookup_elem(&RUNQ_HOST_HISTOGRAM, &slot);
	if (count)
		*count += weight;
	slot = HUATUO_LOG2_SLOTS;
	count = bpf_map_lookup_elem(&RUNQ_HOST_HISTOGRAM, &slot);
	if (count)
		*count += wait * weight;
	watching = bpf_map_lookup_elem(&RUNQ_WATCHING, &zero);
	if (watching && *watching)
		count_cgroup(next, zone, weight);
	return 0;
}
