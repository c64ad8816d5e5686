// SPDX-License-Identifier: GPL-2.0
/* hungtask: one ring buffer record per task khungtaskd reports as hung (sched:sched_process_hang,
 * fired from check_hung_task() on every check period while the task stays in D state), as
 * upstream's hungtask.c but through tp_btf and a ring buffer. User space reads the task's stack and
 * the timeout, backs off repeated reports and publishes the event. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* Layout shared with src/probes/hungtask/mod.rs (HungtaskRecord::decode). */
struct hungtask_event {
	__u64 boot_ns;   /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id; /* the hung task's cgroup v2 id (what bpf_get_current_cgroup_id() gives) */
	__u64 start_ns;  /* task start time: tells a hung task from a later one reusing its pid */
	__u32 pid;       /* thread id */
	__u32 tgid;      /* process id */
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} HUNGTASK_EVENTS SEC(".maps");

/* Reports dropped because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} HUNGTASK_LOST SEC(".maps");

SEC("tp_btf/sched_process_hang")
int BPF_PROG(on_sched_process_hang, struct task_struct *task)
{
	struct hungtask_event *event;
	__u32 zero = 0;
	__u64 *lost;

	event = bpf_ringbuf_reserve(&HUNGTASK_EVENTS, sizeof(*event), 0);
	if (!event) {
		lost = bpf_map_lookup_elem(&HUNGTASK_LOST, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	event->start_ns = BPF_CORE_READ(task, start_time);
	event->pid = BPF_CORE_READ(task, pid);
	event->tgid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&event->comm, task, comm);
	/* User space polls every tick: no wakeup needed. */
	bpf_ringbuf_submit(event, BPF_RB_NO_WAKEUP);
	return 0;
}
