// SPDX-License-Identifier: GPL-2.0
/* iotracing: attached only for one capture window. Bytes each process reads and writes per file
 * (syscalls read/write/pread64/pwrite64: the fd is resolved to its inode through the task's file
 * table, CO-RE), and the block requests each (process, file) caused with their Q2C (request
 * created -> completed) and D2C (issued -> completed) times (tp_btf block_io_start,
 * block_rq_issue, block_rq_complete). A request is attributed to the file of the read/write
 * syscall its submitter is in (direct and synchronous I/O), else to the inode owning its first
 * page (page-cache writeback), else to the disk alone (inode 0: metadata, journal). Tasks that
 * sleep in io_schedule (tp_btf sched_switch with prev->in_iowait, kernel stack taken there) and
 * are woken (tp_btf sched_wakeup) at least `stall_min_ns` later are kept with their longest
 * sleep's stack. No kprobes. */
#include "huatuo.h"

#define REQ_OP_MASK 0xff
#define S_IFMT 00170000
#define S_IFREG 0100000
#define O_DIRECT 00040000
#define PAGE_MAPPING_ANON 0x1
#define NAME_LEN 64
#define MAX_FILES 16384
#define STACK_DEPTH 32

/* Sleeps in io_schedule shorter than this are not kept (upstream: 100 ms). */
const volatile __u64 stall_min_ns = 100000000ULL;

char LICENSE[] SEC("license") = "GPL";

struct file_key {
	__u32 tgid;
	__u32 dev; /* the inode's s_dev (major << 20 | minor); the disk's dev_t for inode 0 */
	__u64 ino;
};

struct file_stats {
	__u64 fs_read_bytes;
	__u64 fs_write_bytes;
	__u64 disk_read_bytes;
	__u64 disk_write_bytes;
	__u64 q2c_sum_ns;
	__u64 q2c_max_ns;
	__u64 d2c_sum_ns;
	__u64 d2c_max_ns;
	__u64 requests;
	__u64 cgroup_id;
	__u32 is_direct;
	__u32 pad;
	char comm[16];
	char name[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FILES);
	__type(key, struct file_key);
	__type(value, struct file_stats);
} IOT_FILES SEC(".maps");

/* The regular file a thread's read/write syscall is on, from enter to exit. */
struct pending_io {
	struct file_key key;
	__u32 is_write;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct pending_io);
} IOT_PENDING SEC(".maps");

struct request_info {
	struct file_key key;
	__u64 queued_ns;
	__u64 issued_ns;
};

/* In-flight requests by address. LRU: a completion we never see cannot leak. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct request_info);
} IOT_REQUESTS SEC(".maps");

/* A zeroed file_stats to build new entries in (too large for comfort on the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_stats);
} IOT_SCRATCH SEC(".maps");

static __always_inline struct file_stats *stats_of(struct file_key *key, struct file *file)
{
	struct file_stats *stats, *fresh;
	__u32 zero = 0;

	stats = bpf_map_lookup_elem(&IOT_FILES, key);
	if (stats)
		return stats;
	fresh = bpf_map_lookup_elem(&IOT_SCRATCH, &zero);
	if (!fresh)
		return 0;
	__builtin_memset(fresh, 0, sizeof(*fresh));
	fresh->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(fresh->comm, sizeof(fresh->comm));
	if (file) {
		const unsigned char *name = BPF_CORE_READ(file, f_path.dentry, d_name.name);

		bpf_probe_read_kernel_str(fresh->name, sizeof(fresh->name), name);
		fresh->is_direct = (BPF_CORE_READ(file, f_flags) & O_DIRECT) ? 1 : 0;
	}
	bpf_map_update_elem(&IOT_FILES, key, fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&IOT_FILES, key);
}

/* The regular file behind `fd` of the current task, or 0. */
static __always_inline struct file *regular_file(unsigned long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = 0;
	struct inode *inode;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	if (!inode || (BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFREG)
		return 0;
	return file;
}

static __always_inline int enter_io(unsigned long fd, __u32 is_write)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct pending_io pending = { .is_write = is_write };
	struct file *file = regular_file(fd);
	struct inode *inode;

	if (!file)
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	pending.key.tgid = id >> 32;
	pending.key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	pending.key.ino = BPF_CORE_READ(inode, i_ino);
	if (!stats_of(&pending.key, file))
		return 0;
	bpf_map_update_elem(&IOT_PENDING, &tid, &pending, BPF_ANY);
	return 0;
}

static __always_inline int exit_io(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_io *pending = bpf_map_lookup_elem(&IOT_PENDING, &tid);
	struct file_stats *stats;

	if (!pending)
		return 0;
	if (ret > 0) {
		stats = bpf_map_lookup_elem(&IOT_FILES, &pending->key);
		if (stats) {
			if (pending->is_write)
				__sync_fetch_and_add(&stats->fs_write_bytes, ret);
			else
				__sync_fetch_and_add(&stats->fs_read_bytes, ret);
		}
	}
	bpf_map_delete_elem(&IOT_PENDING, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int on_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io(ctx->args[0], 0);
}

SEC("tracepoint/syscalls/sys_enter_pread64")
int on_enter_pread64(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io(ctx->args[0], 0);
}

SEC("tracepoint/syscalls/sys_enter_write")
int on_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io(ctx->args[0], 1);
}

SEC("tracepoint/syscalls/sys_enter_pwrite64")
int on_enter_pwrite64(struct trace_event_raw_sys_enter *ctx)
{
	return enter_io(ctx->args[0], 1);
}

SEC("tracepoint/syscalls/sys_exit_read")
int on_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return exit_io(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_pread64")
int on_exit_pread64(struct trace_event_raw_sys_exit *ctx)
{
	return exit_io(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_write")
int on_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return exit_io(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_pwrite64")
int on_exit_pwrite64(struct trace_event_raw_sys_exit *ctx)
{
	return exit_io(ctx->ret);
}

static __always_inline __u32 disk_dev(struct request *rq)
{
	struct gendisk *disk = BPF_CORE_READ(rq, q, disk);

	if (!disk)
		return 0;
	return ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
}

/* Who a request is for: see the file comment. Creates its file entry. */
static __always_inline int attribute(struct request *rq, struct file_key *key)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pending_io *pending = bpf_map_lookup_elem(&IOT_PENDING, &tid);
	struct address_space *mapping;
	struct inode *host;

	if (pending) {
		*key = pending->key;
		return stats_of(key, 0) ? 0 : -1;
	}
	key->tgid = bpf_get_current_pid_tgid() >> 32;
	key->dev = disk_dev(rq);
	key->ino = 0;
	mapping = BPF_CORE_READ(rq, bio, bi_io_vec, bv_page, mapping);
	if (mapping && !((unsigned long)mapping & PAGE_MAPPING_ANON)) {
		host = BPF_CORE_READ(mapping, host);
		if (host && (BPF_CORE_READ(host, i_mode) & S_IFMT) == S_IFREG) {
			key->dev = BPF_CORE_READ(host, i_sb, s_dev);
			key->ino = BPF_CORE_READ(host, i_ino);
		}
	}
	return stats_of(key, 0) ? 0 : -1;
}

SEC("tp_btf/block_io_start")
int BPF_PROG(on_block_io_start, struct request *rq)
{
	struct request_info info = {};
	__u64 addr = (__u64)rq;

	if (attribute(rq, &info.key))
		return 0;
	info.queued_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&IOT_REQUESTS, &addr, &info, BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(on_block_rq_issue, struct request *rq)
{
	__u64 addr = (__u64)rq, now = bpf_ktime_get_ns();
	struct request_info *info = bpf_map_lookup_elem(&IOT_REQUESTS, &addr), fresh = {};

	if (info) {
		info->issued_ns = now;
		return 0;
	}
	/* Not seen at creation (started before the capture, or not accounted): from now. */
	if (attribute(rq, &fresh.key))
		return 0;
	fresh.queued_ns = BPF_CORE_READ(rq, start_time_ns);
	if (!fresh.queued_ns || fresh.queued_ns > now)
		fresh.queued_ns = now;
	fresh.issued_ns = now;
	bpf_map_update_elem(&IOT_REQUESTS, &addr, &fresh, BPF_ANY);
	return 0;
}

static __always_inline void raise_max(__u64 *max, __u64 value)
{
	if (value > *max)
		*max = value;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(on_block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	__u64 addr = (__u64)rq, now = bpf_ktime_get_ns(), q2c, d2c;
	struct request_info *info = bpf_map_lookup_elem(&IOT_REQUESTS, &addr);
	struct file_stats *stats;
	__u32 op;

	if (!info)
		return 0;
	stats = bpf_map_lookup_elem(&IOT_FILES, &info->key);
	if (!stats || !info->issued_ns)
		goto done;
	op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;
	if (op == 0)
		__sync_fetch_and_add(&stats->disk_read_bytes, nr_bytes);
	else if (op == 1)
		__sync_fetch_and_add(&stats->disk_write_bytes, nr_bytes);
	else
		goto done;
	q2c = now > info->queued_ns ? now - info->queued_ns : 0;
	d2c = now > info->issued_ns ? now - info->issued_ns : 0;
	__sync_fetch_and_add(&stats->q2c_sum_ns, q2c);
	__sync_fetch_and_add(&stats->d2c_sum_ns, d2c);
	__sync_fetch_and_add(&stats->requests, 1);
	/* Racy max between CPUs: a lost update only understates one sample. */
	raise_max(&stats->q2c_max_ns, q2c);
	raise_max(&stats->d2c_max_ns, d2c);
done:
	bpf_map_delete_elem(&IOT_REQUESTS, &addr);
	return 0;
}

/* A task asleep in io_schedule since `since_ns`, with the stack it went to sleep with. */
struct blocked {
	__u64 since_ns;
	__u32 cpu;
	__u32 stack_bytes;
	__u64 stack[STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct blocked);
} IOT_BLOCKED SEC(".maps");

/* Per thread: its longest io_schedule sleep of the window at least stall_min_ns long. */
struct stall {
	__u64 latency_ns;
	__u64 count;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 cpu;
	__u32 stack_bytes;
	__u32 pad;
	char comm[16];
	__u64 stack[STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct stall);
} IOT_STALLS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct blocked);
} IOT_BLOCKED_SCRATCH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stall);
} IOT_STALL_SCRATCH SEC(".maps");

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct blocked *b;
	__u32 zero = 0, tid;
	long taken;

	/* Going to sleep (not preempted) inside io_schedule. */
	if (prev_state == 0 || !BPF_CORE_READ_BITFIELD(prev, in_iowait))
		return 0;
	b = bpf_map_lookup_elem(&IOT_BLOCKED_SCRATCH, &zero);
	if (!b)
		return 0;
	/* Still prev's context: its kernel stack down to io_schedule. */
	taken = bpf_get_stack(ctx, b->stack, sizeof(b->stack), 0);
	b->stack_bytes = taken > 0 ? (__u32)taken : 0;
	b->since_ns = bpf_ktime_get_ns();
	b->cpu = bpf_get_smp_processor_id();
	tid = prev->pid;
	bpf_map_update_elem(&IOT_BLOCKED, &tid, b, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	__u32 tid = p->pid, zero = 0;
	struct blocked *b = bpf_map_lookup_elem(&IOT_BLOCKED, &tid);
	struct stall *kept, *fresh;
	__u64 latency;

	if (!b)
		return 0;
	latency = bpf_ktime_get_ns() - b->since_ns;
	if (latency < stall_min_ns)
		goto done;
	kept = bpf_map_lookup_elem(&IOT_STALLS, &tid);
	if (kept) {
		__sync_fetch_and_add(&kept->count, 1);
		if (latency <= kept->latency_ns)
			goto done;
	}
	fresh = bpf_map_lookup_elem(&IOT_STALL_SCRATCH, &zero);
	if (!fresh)
		goto done;
	fresh->latency_ns = latency;
	fresh->count = kept ? kept->count : 1;
	fresh->cgroup_id = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
	fresh->tgid = p->tgid;
	fresh->cpu = b->cpu;
	fresh->stack_bytes = b->stack_bytes;
	BPF_CORE_READ_STR_INTO(&fresh->comm, p, comm);
	__builtin_memcpy(fresh->stack, b->stack, sizeof(fresh->stack));
	bpf_map_update_elem(&IOT_STALLS, &tid, fresh, BPF_ANY);
done:
	bpf_map_delete_elem(&IOT_BLOCKED, &tid);
	return 0;
}
