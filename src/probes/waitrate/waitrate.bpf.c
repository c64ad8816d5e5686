// SPDX-License-Identifier: GPL-2.0
/* waitrate: per container, time its tasks ran and time they waited on a run queue, and who ran
 * on that CPU while they waited. Each CPU keeps its last RING_SLOTS run slices (cgroup, start,
 * end); when a waiting task of a watched container is switched in, its wait [enqueued, now] is
 * intersected with those slices: overlap with its own cgroup's slices is inner wait, with other
 * cgroups' exter wait, and the latter is also added to (victim, contender). The wait is charged
 * to the CPU it was switched in on (a task that migrated while queued is compared with the
 * slices of its new CPU). */
#include "huatuo.h"

#define TASK_RUNNING 0
#define RING_SLOTS 32
#define MAX_WATCHED_CGROUPS 8192
#define MAX_PAIRS 16384

char LICENSE[] SEC("license") = "GPL";

/* Set at load on cgroup v1 and hybrid hosts: key by the task's cpu css cgroup. */
const volatile __u32 key_by_cpu_css = 0;

/* [0] = number of watched containers; 0 skips all per-container work. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} WAIT_WATCHING SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WATCHED_CGROUPS);
	__type(key, __u64);
	__type(value, __u8);
} WAIT_WATCHED_CGROUPS SEC(".maps");

/* Enqueue time (ns) of a queued task, 0 when not queued. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} WAIT_ENQUEUED SEC(".maps");

struct slice {
	__u64 cgroup;
	__u64 start;
	__u64 end;
};

/* Per CPU: the running task's slice so far (cur) and the last RING_SLOTS finished slices. */
struct cpu_slices {
	struct slice cur;
	__u64 head;
	struct slice ring[RING_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_slices);
} WAIT_SLICES SEC(".maps");

/* Per watched cgroup, ns: [0] run, [1] wait, [2] inner wait, [3] exter wait. */
struct cgroup_times {
	__u64 t[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_WATCHED_CGROUPS);
	__type(key, __u64);
	__type(value, struct cgroup_times);
} WAIT_CGROUP_TIMES SEC(".maps");

/* (victim cgroup, contender cgroup) → ns the contender ran while the victim waited. */
struct pair {
	__u64 victim;
	__u64 contender;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_PAIRS);
	__type(key, struct pair);
	__type(value, __u64);
} WAIT_CONTENTION SEC(".maps");

static __always_inline __u64 cgroup_of(struct task_struct *p)
{
	if (key_by_cpu_css)
		return huatuo_cpu_cgroup_id(p);
	return p->cgroups->dfl_cgrp->kn->id;
}

static __always_inline struct cgroup_times *times_of(__u64 cgroup)
{
	struct cgroup_times *times, fresh = {};

	if (!bpf_map_lookup_elem(&WAIT_WATCHED_CGROUPS, &cgroup))
		return 0;
	times = bpf_map_lookup_elem(&WAIT_CGROUP_TIMES, &cgroup);
	if (times)
		return times;
	bpf_map_update_elem(&WAIT_CGROUP_TIMES, &cgroup, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&WAIT_CGROUP_TIMES, &cgroup);
}

static __always_inline void record_enqueue(struct task_struct *p, __u64 now)
{
	__u64 *enqueued;

	if (p->pid == 0)
		return;
	enqueued = bpf_task_storage_get(&WAIT_ENQUEUED, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (enqueued)
		*enqueued = now;
}

static __always_inline int watching(void)
{
	__u32 zero = 0, *on = bpf_map_lookup_elem(&WAIT_WATCHING, &zero);

	return on && *on;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	if (watching())
		record_enqueue(p, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_sched_wakeup_new, struct task_struct *p)
{
	if (watching())
		record_enqueue(p, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct cgroup_times *times;
	struct cpu_slices *cpu;
	__u64 now, *enqueued, since, victim, inner = 0, exter = 0;
	__u32 zero = 0, i;

	if (!watching())
		return 0;
	cpu = bpf_map_lookup_elem(&WAIT_SLICES, &zero);
	if (!cpu)
		return 0;
	now = bpf_ktime_get_ns();

	/* Close prev's slice: count it as run time and remember it (idle slices contend with
	 * nobody and are not kept). */
	if (cpu->cur.start && prev->pid != 0) {
		times = times_of(cpu->cur.cgroup);
		if (times)
			times->t[0] += now - cpu->cur.start;
		i = cpu->head % RING_SLOTS;
		cpu->ring[i].cgroup = cpu->cur.cgroup;
		cpu->ring[i].start = cpu->cur.start;
		cpu->ring[i].end = now;
		cpu->head++;
	}
	if (prev_state == TASK_RUNNING)
		record_enqueue(prev, now);

	victim = next->pid ? cgroup_of(next) : 0;
	cpu->cur.cgroup = victim;
	cpu->cur.start = now;
	if (!next->pid)
		return 0;
	enqueued = bpf_task_storage_get(&WAIT_ENQUEUED, next, 0, 0);
	if (!enqueued || *enqueued == 0)
		return 0;
	since = *enqueued;
	*enqueued = 0;
	times = times_of(victim);
	if (!times || since > now)
		return 0;
	times->t[1] += now - since;
	for (i = 0; i < RING_SLOTS; i++) {
		struct slice *s = &cpu->ring[i];
		__u64 from = s->start > since ? s->start : since;
		__u64 to = s->end < now ? s->end : now;
		struct pair key;
		__u64 *ns, overlap;

		if (!s->end || to <= from)
			continue;
		overlap = to - from;
		if (s->cgroup == victim) {
			inner += overlap;
			continue;
		}
		exter += overlap;
		key.victim = victim;
		key.contender = s->cgroup;
		ns = bpf_map_lookup_elem(&WAIT_CONTENTION, &key);
		if (ns) {
			__sync_fetch_and_add(ns, overlap);
		} else {
			bpf_map_update_elem(&WAIT_CONTENTION, &key, &overlap, BPF_NOEXIST);
		}
	}
	times->t[2] += inner;
	times->t[3] += exter;
	return 0;
}
