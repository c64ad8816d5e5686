// SPDX-License-Identifier: GPL-2.0
/* oom: one ring buffer record per OOM kill, from oom:mark_victim (tp_btf; fired by
 * __oom_kill_process() in the context of the task whose allocation invoked the OOM killer, so
 * `current` is the trigger). Replaces upstream's kprobe on oom_kill_process. The memcg snapshot
 * (memory.current/max/stat/events) and host meminfo are read in user space. Needs the
 * (task_struct *, uid_t) form of mark_victim (Linux >= 6.8; older kernels pass only a pid). */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* Layouts shared with src/probes/oom/mod.rs (OomRecord::decode). */
struct oom_task {
	__u64 cgroup_id; /* cgroup v2 id (what bpf_get_current_cgroup_id() gives) */
	__u64 memcg_id;  /* id of its memory cgroup (the v1 memory hierarchy on v1 hosts) */
	__u32 pid;       /* thread id */
	__u32 tgid;      /* process id */
	char comm[16];
	__u64 memcg_css; /* task->cgroups->subsys[memory_cgrp_id]: upstream's memory_cgroup_css_addr */
};

struct oom_event {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns() */
	__u32 victim_uid;
	__u32 pad;
	struct oom_task victim;
	struct oom_task trigger;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} OOM_EVENTS SEC(".maps");

/* Kills not reported because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} OOM_LOST SEC(".maps");

/* The task's memory cgroup css (the address upstream names containers by); 0 without memcg. */
static __always_inline __u64 memcg_css(struct task_struct *task)
{
	int memory;

	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return 0;
	memory = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	if (memory < 0 || memory >= CGROUP_SUBSYS_COUNT)
		return 0;
	return (__u64)BPF_CORE_READ(task, cgroups, subsys[memory]);
}

static __always_inline void fill_task(struct oom_task *out, struct task_struct *task)
{
	out->memcg_css = memcg_css(task);
	out->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	out->memcg_id = huatuo_memcg_id(task);
	out->pid = BPF_CORE_READ(task, pid);
	out->tgid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&out->comm, task, comm);
}

SEC("tp_btf/mark_victim")
int BPF_PROG(on_mark_victim, struct task_struct *victim, uid_t uid)
{
	struct oom_event *event;
	__u32 zero = 0;
	__u64 *lost;

	event = bpf_ringbuf_reserve(&OOM_EVENTS, sizeof(*event), 0);
	if (!event) {
		lost = bpf_map_lookup_elem(&OOM_LOST, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->victim_uid = uid;
	event->pad = 0;
	fill_task(&event->victim, victim);
	fill_task(&event->trigger, (struct task_struct *)bpf_get_current_task_btf());
	bpf_ringbuf_submit(event, BPF_RB_NO_WAKEUP);
	return 0;
}
