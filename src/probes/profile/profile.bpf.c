// SPDX-License-Identifier: GPL-2.0
/* profile: on-CPU samples (perf_event cpu-clock on every CPU) and off-CPU episodes (tp_btf
 * sched_switch, optionally sched_wakeup), aggregated in the kernel by (user stack, kernel stack,
 * tgid, pid, cgroup, kind) -> count and time. Two count maps and two stack maps form a double
 * buffer: PROFILE_LIVE[0] names the live one; user space flips it, waits a grace period, then
 * reads and clears the other, so no sample is lost while it reads. */
#include "huatuo.h"

#define TASK_RUNNING 0
#define PERF_MAX_STACK_DEPTH 127
#define KIND_CPU 0
#define KIND_OFFCPU 1
#define PHASE_ALL 0
#define PHASE_BLOCKED 1
#define PHASE_RUNQUEUE 2
/* PROFILE_STATS slots. */
#define STAT_SAMPLES 0
#define STAT_LOST_FULL 1
#define STAT_LOST_STACK 2
#define STAT_EPISODES 3
#define STAT_SLOTS 4

char LICENSE[] SEC("license") = "GPL";

/* Filters, set at load (a capture loads its own object): 0 = any. */
const volatile __u32 filter_tgid = 0;
const volatile __u64 filter_cgroup = 0;
/* Kernel stacks only: user stacks are not walked (cheaper, no user memory touched). */
const volatile __u32 kernel_only = 0;
/* cgroup v1 / hybrid hosts: containers are keyed by the task's cpu css cgroup. */
const volatile __u32 key_by_cpu_css = 0;
const volatile __u64 min_block_ns = 1000000;
const volatile __u32 offcpu_phase = PHASE_ALL;

HUATUO_SAMPLING_KNOB

struct sample_key {
	__u32 tgid;
	__u32 pid;
	__s32 user_stack;
	__s32 kernel_stack;
	__u64 cgroup;
	__u32 kind;
	__u32 pad;
};

struct sample_value {
	__u64 count;
	__u64 value_ns;
	char comm[16];
};

/* Sizes are set by user space at load (PROFILE_COUNTS_* and PROFILE_STACKS_*). */
struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sample_key);
	__type(value, struct sample_value);
};

struct stacks_map {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PERF_MAX_STACK_DEPTH * sizeof(__u64));
};

struct counts_map PROFILE_COUNTS_0 SEC(".maps");
struct counts_map PROFILE_COUNTS_1 SEC(".maps");
struct stacks_map PROFILE_STACKS_0 SEC(".maps");
struct stacks_map PROFILE_STACKS_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} PROFILE_LIVE SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} PROFILE_STATS SEC(".maps");

/* Off-CPU: what a task left the CPU with, in its own storage (freed with the task). */
struct offcpu_start {
	__u64 out_ns;
	__u64 woken_ns;
	__s32 user_stack;
	__s32 kernel_stack;
	__u32 blocked;
	__u32 weight;
	__u32 buffer;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct offcpu_start);
} PROFILE_OFFCPU SEC(".maps");

static __always_inline void stat_add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&PROFILE_STATS, &slot);

	if (v)
		*v += n;
}

static __always_inline __u32 live_buffer(void)
{
	__u32 zero = 0, *live = bpf_map_lookup_elem(&PROFILE_LIVE, &zero);

	return live && *live ? 1 : 0;
}

static __always_inline __u64 task_cgroup(struct task_struct *task)
{
	if (key_by_cpu_css)
		return huatuo_cpu_cgroup_id(task);
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline int wanted(struct task_struct *task, __u32 tgid, __u64 *cgroup)
{
	if (filter_tgid && tgid != filter_tgid)
		return 0;
	*cgroup = task_cgroup(task);
	return !filter_cgroup || *cgroup == filter_cgroup;
}

/* Stack ids of the current task into the live (or given) stack map; a failed walk is -1
 * (EFAULT is normal: no user stack for kernel threads, no kernel stack in user mode). */
static __always_inline void stack_ids(void *ctx, __u32 buffer, __s32 *user, __s32 *kernel)
{
	long k, u = -1;

	if (buffer) {
		k = bpf_get_stackid(ctx, &PROFILE_STACKS_1, 0);
		if (!kernel_only)
			u = bpf_get_stackid(ctx, &PROFILE_STACKS_1, BPF_F_USER_STACK);
	} else {
		k = bpf_get_stackid(ctx, &PROFILE_STACKS_0, 0);
		if (!kernel_only)
			u = bpf_get_stackid(ctx, &PROFILE_STACKS_0, BPF_F_USER_STACK);
	}
	/* -EEXIST: a hash collision in a full stack map; the frames are lost. */
	if (k == -17 || u == -17)
		stat_add(STAT_LOST_STACK, 1);
	*kernel = k < 0 ? -1 : (__s32)k;
	*user = u < 0 ? -1 : (__s32)u;
}

static __always_inline void count(__u32 buffer, struct sample_key *key, struct task_struct *task,
				  __u64 n, __u64 value_ns)
{
	struct sample_value *v, fresh = {};
	void *map = buffer ? (void *)&PROFILE_COUNTS_1 : (void *)&PROFILE_COUNTS_0;

	v = bpf_map_lookup_elem(map, key);
	if (!v) {
		BPF_CORE_READ_STR_INTO(&fresh.comm, task, comm);
		/* Fails when full (or when another CPU inserted first: the lookup tells). */
		bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST);
		v = bpf_map_lookup_elem(map, key);
		if (!v) {
			stat_add(STAT_LOST_FULL, n);
			return;
		}
	}
	__sync_fetch_and_add(&v->count, n);
	__sync_fetch_and_add(&v->value_ns, value_ns);
}

SEC("perf_event")
int on_cpu_clock(struct bpf_perf_event_data *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct sample_key key = {};
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 weight, buffer;

	/* The idle task: not a stack anyone profiles. */
	if ((__u32)pid_tgid == 0)
		return 0;
	key.tgid = pid_tgid >> 32;
	key.pid = (__u32)pid_tgid;
	if (!wanted(task, key.tgid, &key.cgroup))
		return 0;
	weight = huatuo_sample_weight();
	if (!weight)
		return 0;
	stat_add(STAT_SAMPLES, weight);
	buffer = live_buffer();
	stack_ids(ctx, buffer, &key.user_stack, &key.kernel_stack);
	/* Kernel-only: a sample taken in user mode has no kernel stack to show. */
	if (kernel_only && key.kernel_stack < 0)
		return 0;
	key.kind = KIND_CPU;
	count(buffer, &key, task, weight, 0);
	return 0;
}

static __always_inline void switch_out(void *ctx, struct task_struct *prev, unsigned int state)
{
	struct offcpu_start *start;
	__u32 tgid = BPF_CORE_READ(prev, tgid), weight, blocked = state != TASK_RUNNING;
	__u64 cgroup;

	if (prev->pid == 0 || !wanted(prev, tgid, &cgroup))
		return;
	/* Runnable switch-outs (preemption, yield) only wait on the run queue. */
	if (!blocked && offcpu_phase == PHASE_BLOCKED)
		return;
	weight = huatuo_sample_weight();
	if (!weight)
		return;
	start = bpf_task_storage_get(&PROFILE_OFFCPU, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!start)
		return;
	start->buffer = live_buffer();
	/* prev is still current here: its stacks are the ones it blocked in. */
	stack_ids(ctx, start->buffer, &start->user_stack, &start->kernel_stack);
	start->out_ns = bpf_ktime_get_ns();
	start->woken_ns = 0;
	start->blocked = blocked;
	start->weight = weight;
}

static __always_inline void switch_in(struct task_struct *next)
{
	struct offcpu_start *start;
	struct sample_key key = {};
	__u64 now, value, woken;

	start = bpf_task_storage_get(&PROFILE_OFFCPU, next, 0, 0);
	if (!start || start->out_ns == 0)
		return;
	now = bpf_ktime_get_ns();
	woken = start->woken_ns ? start->woken_ns : now;
	if (offcpu_phase == PHASE_BLOCKED)
		value = woken - start->out_ns;
	else if (offcpu_phase == PHASE_RUNQUEUE)
		value = start->blocked ? now - woken : now - start->out_ns;
	else
		value = now - start->out_ns;
	/* Stacks are resolved from the buffer they were taken into; a flip in between voids it
	 * (its stack ids are about to be cleared). A duty-cycle pause voids it too. */
	if (start->out_ns < huatuo_sampling_since() || start->buffer != live_buffer()) {
		start->out_ns = 0;
		return;
	}
	start->out_ns = 0;
	if (value < min_block_ns)
		return;
	key.tgid = BPF_CORE_READ(next, tgid);
	key.pid = next->pid;
	key.user_stack = start->user_stack;
	key.kernel_stack = start->kernel_stack;
	key.cgroup = task_cgroup(next);
	key.kind = KIND_OFFCPU;
	stat_add(STAT_EPISODES, start->weight);
	count(start->buffer, &key, next, start->weight, value * start->weight);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	switch_out(ctx, prev, prev_state);
	switch_in(next);
	return 0;
}

/* Attached for the blocked / runqueue phases: where blocking ends and queueing starts. */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	struct offcpu_start *start = bpf_task_storage_get(&PROFILE_OFFCPU, p, 0, 0);

	if (start && start->out_ns && start->blocked && !start->woken_ns)
		start->woken_ns = bpf_ktime_get_ns();
	return 0;
}
