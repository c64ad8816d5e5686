// SPDX-License-Identifier: GPL-2.0
/* sched_tick: per-CPU interval between scheduler ticks, tracepoints only.
 *
 * Every scheduler tick is the expiry of the CPU's tick_sched.sched_timer hrtimer, whose function
 * is tick_nohz_handler (tick_sched_timer before 6.9): tp_btf timer/hrtimer_expire_entry filtered
 * on that function (its kallsyms address, set at load) sees each tick, in the timer interrupt of
 * the CPU, so comm/pid and the kernel stack are those of the interrupted context. Upstream hooks
 * a kprobe on account_process_tick instead; this kernel has no kprobes.
 *
 * A stopped tick (NO_HZ idle) is not a stall: timer/tick_stop (success) marks the CPU, and the
 * tick that fires while tick_sched.flags still says STOPPED (a NO_HZ wake-up of the timer) or the
 * first one after the tick restarted only restarts the measurement. An interval of at least
 * `threshold_ns` is counted (weighted by the sampling knob) and, within `max_per_sec` reports per
 * CPU per second, queued with the kernel stack. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

/* 64-bit settings as two halves: the loader sets 32-bit globals. */
const volatile __u32 tick_fn_lo = 0;
const volatile __u32 tick_fn_hi = 0;
const volatile __u32 threshold_lo = 10000000;
const volatile __u32 threshold_hi = 0;
/* Reports per CPU per second; 0 = no limit. */
const volatile __u32 max_per_sec = 10;

HUATUO_SAMPLING_KNOB

/* TS_FLAG_STOPPED of kernel/time/tick-sched.h (6.9+: tick_sched.flags). */
#define TS_FLAG_STOPPED (1UL << 1)
/* Kernel stack frames per report (upstream keeps 127; a tick in a syscall is ~20-30 deep). */
#define STACK_DEPTH 64

#define COUNT_TICKS 0    /* tick timer expiries seen */
#define COUNT_GAPS 1     /* intervals >= threshold, weighted */
#define COUNT_NOHZ 2     /* intervals not measured because the tick was stopped */
#define SUPPRESSED_RATE 0
#define SUPPRESSED_RING 1

struct tick_state {
	__u64 last_ns;  /* bpf_ktime_get_ns() of the previous tick, 0 = none yet */
	__u32 stopped;  /* the tick stopped since the previous tick (or still is) */
	__u32 pad;
	struct huatuo_rate_window window;
};

/* Layout shared with src/probes/sched_tick/record.rs (TickRecord::decode). */
struct tick_event {
	__u64 boot_ns;            /* 0 */
	__u64 interval_ns;        /* 8 */
	__u32 pid;                /* 16: tgid of the interrupted task */
	__u32 tid;                /* 20 */
	__u32 cpu;                /* 24 */
	__u32 stack_bytes;        /* 28: bytes of `stack` filled (frames * 8) */
	char comm[16];            /* 32 */
	__u64 stack[STACK_DEPTH]; /* 48: return addresses, innermost first; only stack_bytes sent */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tick_state);
} SCHED_TICK_STATE SEC(".maps");

/* The record being built: too big for the BPF stack. The tick does not nest on a CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tick_event);
} SCHED_TICK_SCRATCH SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} SCHED_TICK_EVENTS SEC(".maps");

/* Index COUNT_*. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} SCHED_TICK_COUNT SEC(".maps");

/* Index SUPPRESSED_RATE: gaps over the rate limit; SUPPRESSED_RING: no room in the ring. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} SCHED_TICK_SUPPRESSED SEC(".maps");

static __always_inline void bump(void *map, __u32 index, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(map, &index);

	if (slot)
		*slot += value;
}

/* Whether the tick of the tick_sched embedding `timer` is stopped right now. Kernels before 6.9
 * keep that in a bitfield instead of `flags`: there only the tick_stop mark is used, and a tick
 * that interrupts the idle task keeps the mark (with NO_HZ idle the tick stops only in idle). */
static __always_inline int tick_stopped(struct hrtimer *timer)
{
	unsigned long flags = 0;
	void *ts;

	if (!bpf_core_field_exists(struct tick_sched, flags))
		return (bpf_get_current_pid_tgid() >> 32) == 0;
	ts = (void *)timer - bpf_core_field_offset(struct tick_sched, sched_timer);
	if (bpf_probe_read_kernel(&flags, sizeof(flags),
				  ts + bpf_core_field_offset(struct tick_sched, flags)))
		return 0;
	return (flags & TS_FLAG_STOPPED) != 0;
}

static __always_inline void report(void *ctx, struct tick_state *state, __u64 interval)
{
	struct tick_event *e;
	__u32 zero = 0;
	__u32 weight;
	__u64 id, size;
	long taken;

	weight = huatuo_sample_weight();
	if (!weight)
		return;
	bump(&SCHED_TICK_COUNT, COUNT_GAPS, weight);
	if (!huatuo_take_token(&state->window, max_per_sec)) {
		bump(&SCHED_TICK_SUPPRESSED, SUPPRESSED_RATE, weight);
		return;
	}
	/* The report stands for `weight` gaps: the others are suppressed by sampling. */
	if (weight > 1)
		bump(&SCHED_TICK_SUPPRESSED, SUPPRESSED_RATE, weight - 1);
	e = bpf_map_lookup_elem(&SCHED_TICK_SCRATCH, &zero);
	if (!e)
		return;
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->interval_ns = interval;
	id = bpf_get_current_pid_tgid();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	taken = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	size = taken > 0 ? (__u64)taken : 0;
	if (size > sizeof(e->stack))
		size = sizeof(e->stack);
	e->stack_bytes = size;
	size += offsetof(struct tick_event, stack);
	if (bpf_ringbuf_output(&SCHED_TICK_EVENTS, e, size, 0))
		bump(&SCHED_TICK_SUPPRESSED, SUPPRESSED_RING, 1);
}

SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(on_hrtimer_expire_entry, struct hrtimer *timer, ktime_t *now)
{
	__u64 tick_fn = ((__u64)tick_fn_hi << 32) | tick_fn_lo;
	__u64 threshold = ((__u64)threshold_hi << 32) | threshold_lo;
	struct tick_state *state;
	__u32 zero = 0;
	__u64 ts, last;
	int stopped, marked;

	if ((__u64)BPF_CORE_READ(timer, function) != tick_fn)
		return 0;
	state = bpf_map_lookup_elem(&SCHED_TICK_STATE, &zero);
	if (!state)
		return 0;
	bump(&SCHED_TICK_COUNT, COUNT_TICKS, 1);
	ts = bpf_ktime_get_ns();
	last = state->last_ns;
	state->last_ns = ts;
	marked = state->stopped;
	stopped = tick_stopped(timer);
	/* Without tick_sched.flags `stopped` only says "in idle": it counts only after a stop. */
	if (!bpf_core_field_exists(struct tick_sched, flags))
		stopped = marked && stopped;
	/* Still stopped (a NO_HZ wake-up of the timer): the tick after the restart is no gap
	 * either. Stopped without a mark: it stopped before this program was attached. */
	state->stopped = stopped;
	stopped = stopped || marked;
	if (stopped) {
		if (last)
			bump(&SCHED_TICK_COUNT, COUNT_NOHZ, 1);
		return 0;
	}
	if (!last || ts - last < threshold)
		return 0;
	report(ctx, state, ts - last);
	return 0;
}

SEC("tp_btf/tick_stop")
int BPF_PROG(on_tick_stop, int success, int dependency)
{
	struct tick_state *state;
	__u32 zero = 0;

	/* A failed attempt (a dependency keeps the tick) changes nothing. */
	if (!success)
		return 0;
	state = bpf_map_lookup_elem(&SCHED_TICK_STATE, &zero);
	if (state)
		state->stopped = 1;
	return 0;
}
