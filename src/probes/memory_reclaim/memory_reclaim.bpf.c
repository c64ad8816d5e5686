// SPDX-License-Identifier: GPL-2.0
/* memory_reclaim: time tasks spend stalled in direct reclaim and direct compaction (host,
 * cumulative ns, as upstream's memory_free_compact.c) and the number of memcg direct reclaims
 * per container (as upstream's memory_reclaim.c), tracepoint-only:
 * vmscan:mm_vmscan_direct_reclaim_begin/end, compaction:mm_compaction_begin/end (kcompactd
 * excluded), vmscan:mm_vmscan_memcg_reclaim_begin attributed to the reclaiming task's cgroup. */
#include "huatuo.h"

#define PF_KTHREAD 0x00200000

char LICENSE[] SEC("license") = "GPL";

enum stall_kind {
	STALL_DIRECT_RECLAIM = 0,
	STALL_COMPACTION = 1,
	STALL_KINDS = 2,
};

/* Start time of a stall in progress, per thread and kind (key: tid << 1 | kind). */
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

/* Container cgroup ids to count memcg reclaims for (filled from discovery). */
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
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff) << 1 | kind;
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&STALL_START, &key, &now, BPF_ANY);
}

static __always_inline void stall_end(__u32 kind)
{
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff) << 1 | kind;
	__u64 *start = bpf_map_lookup_elem(&STALL_START, &key);
	__u64 *total, delta;

	if (!start)
		return;
	delta = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&STALL_START, &key);
	total = bpf_map_lookup_elem(&STALL_NS, &kind);
	if (total)
		*total += delta;
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
	stall_end(STALL_DIRECT_RECLAIM);
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
