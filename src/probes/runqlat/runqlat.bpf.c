// SPDX-License-Identifier: GPL-2.0
/* runqlat: time a task waits on a run queue, from wakeup (or involuntary preemption) until it is
 * switched in, counted in 4 zones (<10ms, <20ms, <50ms, >=50ms) as upstream's cpu_runqlat_tracing.c.
 * Per-task state carries the cgroup id so a later per-container split needs no map change. */
#include "huatuo.h"

#define TASK_RUNNING 0
#define NSEC_PER_MSEC 1000000ULL

char LICENSE[] SEC("license") = "GPL";

/* 1-in-N sampling of enqueue events, set by user space (adaptive sampling). */
const volatile __u32 sample_one_in_n = 1;

struct enqueue_info {
	__u64 ts;
	__u64 cgroup_id;
};

/* LRU: tasks that exit while queued can never leak entries. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct enqueue_info);
} RUNQ_ENQUEUED SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HUATUO_NR_ZONES);
	__type(key, __u32);
	__type(value, __u64);
} RUNQ_HOST_LATENCY SEC(".maps");

static __always_inline void record_enqueue(struct task_struct *p)
{
	__u32 pid = p->pid;
	struct enqueue_info info;

	if (pid == 0 || !huatuo_sampled(sample_one_in_n))
		return;
	info.ts = bpf_ktime_get_ns();
	info.cgroup_id = 0; /* filled by the per-container split */
	bpf_map_update_elem(&RUNQ_ENQUEUED, &pid, &info, BPF_ANY);
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
	struct enqueue_info *info;
	__u32 pid, zone;
	__u64 *count;

	/* A task preempted while runnable goes straight back on the run queue. */
	if (prev_state == TASK_RUNNING)
		record_enqueue(prev);

	pid = next->pid;
	info = bpf_map_lookup_elem(&RUNQ_ENQUEUED, &pid);
	if (!info)
		return 0;
	zone = huatuo_zone(bpf_ktime_get_ns() - info->ts, 10 * NSEC_PER_MSEC, 20 * NSEC_PER_MSEC,
			   50 * NSEC_PER_MSEC);
	bpf_map_delete_elem(&RUNQ_ENQUEUED, &pid);
	count = bpf_map_lookup_elem(&RUNQ_HOST_LATENCY, &zone);
	if (count)
		*count += 1;
	return 0;
}
