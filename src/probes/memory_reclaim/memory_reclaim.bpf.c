// SPDX-License-Identifier: GPL-2.0
/* memory_reclaim: time tasks spend stalled in direct reclaim and direct compaction (host,
 * cumulative ns, as upstream's memory_free_compact.c) and the number of memcg direct reclaims
 * per container (as upstream's memory_reclaim.c), tracepoint-only:
 * vmscan:mm_vmscan_direct_reclaim_begin/end, compaction:mm_compaction_begin/end (kcompactd
 * excluded), vmscan:mm_vmscan_memcg_reclaim_begin attributed to the reclaiming task's cgroup.
 * Also the memory_reclaim event (upstream's memory_reclaim_events): one ring buffer record per
 * direct reclaim (global or memcg) of a task that lasted at least event_threshold_us, at most
 * EVENT_RATE_LIMIT records a second (the rest counted as suppressed). */
#include "huatuo.h"

#define PF_KTHREAD 0x00200000

char LICENSE[] SEC("license") = "GPL";

enum stall_kind {
	STALL_DIRECT_RECLAIM = 0,
	STALL_COMPACTION = 1,
	STALL_KINDS = 2,
	/* Only timed for the event, not accumulated in STALL_NS. */
	STALL_MEMCG_RECLAIM = 2,
};

/* Event kinds (reclaim_event.kind), shared with src/probes/memory_reclaim/mod.rs. */
#define EVENT_KIND_DIRECT 0
#define EVENT_KIND_MEMCG 1
#define EVENT_RATE_LIMIT 100
#define NSEC_PER_SEC 1000000000ULL

/* Set at load on cgroup v1 and hybrid hosts: memcg reclaims are counted for the task's memory
 * css cgroup (as upstream keys by the memory css) instead of its default-hierarchy cgroup. */
const volatile __u32 key_by_memory_css = 0;

/* Reclaims at least this long (µs) become events; set at load from event_threshold_ms. */
const volatile __u32 event_threshold_us = 900000;

/* Layout shared with src/probes/memory_reclaim/mod.rs (ReclaimRecord::decode). */
struct reclaim_event {
	__u64 boot_ns;     /* bpf_ktime_get_boot_ns() at the end of the reclaim */
	__u64 cgroup_id;   /* bpf_get_current_cgroup_id() */
	__u64 memcg_id;    /* id of the task's memory cgroup (names the container on v1 hosts) */
	__u64 duration_ns;
	__u32 pid;         /* thread id */
	__u32 tgid;        /* process id */
	__u32 kind;        /* EVENT_KIND_* */
	__u32 pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} RECLAIM_EVENTS SEC(".maps");

/* Index 0: events suppressed by the rate limit; 1: events lost (ring buffer full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} RECLAIM_EVENT_DROPS SEC(".maps");

/* The rate limit's window: the current second and the events let through in it (global). */
struct rate_window {
	__u64 second;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rate_window);
} RECLAIM_EVENT_RATE SEC(".maps");

/* Start time of a stall in progress, per thread and kind (key: tid << 2 | kind). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} STALL_START SEC(".maps");

/* Cumulative stall ns per kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STALL_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} STALL_NS SEC(".maps");

/* Container cgroup ids (default hierarchy, or memory hierarchy with key_by_memory_css) to
 * count memcg reclaims for (filled from discovery). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} RECLAIM_WATCHED_CGROUPS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u64);
} RECLAIM_CGROUP_COUNT SEC(".maps");

static __always_inline void stall_begin(__u32 kind)
{
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff) << 2 | kind;
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&STALL_START, &key, &now, BPF_ANY);
}

/* Ends the stall of `kind` in progress on this thread: its duration, 0 when none was begun. */
static __always_inline __u64 stall_end(__u32 kind)
{
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff) << 2 | kind;
	__u64 *start = bpf_map_lookup_elem(&STALL_START, &key);
	__u64 *total, delta;

	if (!start)
		return 0;
	delta = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&STALL_START, &key);
	if (kind < STALL_KINDS) {
		total = bpf_map_lookup_elem(&STALL_NS, &kind);
		if (total)
			*total += delta;
	}
	return delta;
}

static __always_inline void count_drop(__u32 index)
{
	__u64 *drops = bpf_map_lookup_elem(&RECLAIM_EVENT_DROPS, &index);

	if (drops)
		*drops += 1;
}

/* At most EVENT_RATE_LIMIT events per second, host-wide (a racy reset at a second boundary can
 * let a few more through; the count itself is atomic). */
static __always_inline int rate_allows(void)
{
	__u64 second = bpf_ktime_get_ns() / NSEC_PER_SEC;
	struct rate_window *window;
	__u32 zero = 0;

	window = bpf_map_lookup_elem(&RECLAIM_EVENT_RATE, &zero);
	if (!window)
		return 0;
	if (window->second != second) {
		window->second = second;
		window->count = 0;
	}
	return __sync_fetch_and_add(&window->count, 1) < EVENT_RATE_LIMIT;
}

static __always_inline void emit_event(__u64 duration_ns, __u32 kind)
{
	struct task_struct *task;
	struct reclaim_event *event;
	__u64 pid_tgid;

	if (duration_ns == 0 || duration_ns < (__u64)event_threshold_us * 1000)
		return;
	if (!rate_allows()) {
		count_drop(0);
		return;
	}
	event = bpf_ringbuf_reserve(&RECLAIM_EVENTS, sizeof(*event), 0);
	if (!event) {
		count_drop(1);
		return;
	}
	task = (struct task_struct *)bpf_get_current_task_btf();
	pid_tgid = bpf_get_current_pid_tgid();
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->cgroup_id = bpf_get_current_cgroup_id();
	event->memcg_id = huatuo_memcg_id(task);
	event->duration_ns = duration_ns;
	event->pid = (__u32)pid_tgid;
	event->tgid = pid_tgid >> 32;
	event->kind = kind;
	event->pad = 0;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	bpf_ringbuf_submit(event, BPF_RB_NO_WAKEUP);
}

static __always_inline int is_kthread(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();

	return task->flags & PF_KTHREAD;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_begin")
int BPF_PROG(on_direct_reclaim_begin, int order, gfp_t gfp_flags)
{
	stall_begin(STALL_DIRECT_RECLAIM);
	return 0;
}

SEC("tp_btf/mm_vmscan_direct_reclaim_end")
int BPF_PROG(on_direct_reclaim_end, unsigned long nr_reclaimed)
{
	emit_event(stall_end(STALL_DIRECT_RECLAIM), EVENT_KIND_DIRECT);
	return 0;
}

SEC("tp_btf/mm_compaction_begin")
int BPF_PROG(on_compaction_begin, struct compact_control *cc)
{
	/* kcompactd compacts in the background: only direct compaction stalls a task. */
	if (!is_kthread())
		stall_begin(STALL_COMPACTION);
	return 0;
}

SEC("tp_btf/mm_compaction_end")
int BPF_PROG(on_compaction_end, struct compact_control *cc)
{
	if (!is_kthread())
		stall_end(STALL_COMPACTION);
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_begin")
int BPF_PROG(on_memcg_reclaim_begin, int order, gfp_t gfp_flags)
{
	__u64 cgroup_id, *count, one = 1;

	if (is_kthread())
		return 0;
	stall_begin(STALL_MEMCG_RECLAIM);
	if (key_by_memory_css)
		cgroup_id = huatuo_memcg_id((struct task_struct *)bpf_get_current_task_btf());
	else
		cgroup_id = bpf_get_current_cgroup_id();
	if (!bpf_map_lookup_elem(&RECLAIM_WATCHED_CGROUPS, &cgroup_id))
		return 0;
	count = bpf_map_lookup_elem(&RECLAIM_CGROUP_COUNT, &cgroup_id);
	if (count)
		*count += 1;
	else
		bpf_map_update_elem(&RECLAIM_CGROUP_COUNT, &cgroup_id, &one, BPF_NOEXIST);
	return 0;
}

SEC("tp_btf/mm_vmscan_memcg_reclaim_end")
int BPF_PROG(on_memcg_reclaim_end, unsigned long nr_reclaimed)
{
	if (!is_kthread())
		emit_event(stall_end(STALL_MEMCG_RECLAIM), EVENT_KIND_MEMCG);
	return 0;
}
