/* Shared header for every HUATUO BPF program: kernel types (CO-RE), libbpf helpers and small
 * helpers that keep hot paths cheap. Include this first in each probe's .bpf.c. */
#ifndef HUATUO_BPF_H
#define HUATUO_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define HUATUO_NR_ZONES 4

/* Adaptive sampling knob. A probe that can be throttled writes HUATUO_SAMPLING_KNOB once at
 * file scope and asks huatuo_sample_weight() on its hot path: 0 = skip this event, otherwise the
 * weight to count it with. The sampler actor writes the divisor N (1 = every event) into the
 * HUATUO_SAMPLING map; the shared Rust code finds the map by name, so declaring the knob is all
 * a probe does to become throttleable. Counting each kept event N times keeps counters and
 * histograms unbiased without any user-space rescaling. */
#define HUATUO_SAMPLING_KNOB                                                                       \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                                  \
		__uint(max_entries, 1);                                                            \
		__type(key, __u32);                                                                \
		__type(value, __u32);                                                              \
	} HUATUO_SAMPLING SEC(".maps");                                                            \
	static __always_inline __u32 huatuo_sampling_divisor(void)                                 \
	{                                                                                          \
		__u32 zero = 0, *divisor = bpf_map_lookup_elem(&HUATUO_SAMPLING, &zero);           \
		return divisor && *divisor > 1 ? *divisor : 1;                                     \
	}                                                                                          \
	static __always_inline __u32 huatuo_sample_weight(void)                                    \
	{                                                                                          \
		__u32 divisor = huatuo_sampling_divisor();                                         \
		if (divisor == 1)                                                                  \
			return 1;                                                                  \
		return (bpf_get_prandom_u32() % divisor) == 0 ? divisor : 0;                       \
	}

/* Bucket a latency into 4 zones given three ascending upper bounds (exclusive). */
static __always_inline __u32 huatuo_zone(__u64 delta, __u64 b0, __u64 b1, __u64 b2)
{
	if (delta < b0)
		return 0;
	if (delta < b1)
		return 1;
	if (delta < b2)
		return 2;
	return 3;
}

/* Log2 histogram slots: slot i counts values in [2^i, 2^(i+1)) of the unit (slot 0 also holds
 * values below 2); the last slot holds everything larger. */
#define HUATUO_LOG2_SLOTS 26

static __always_inline __u32 huatuo_log2_slot(__u64 value)
{
	/* Branch-light floor(log2(value)); a loop here explodes the verifier's state count. */
	__u32 r, shift;

	r = (value > 0xFFFFFFFFULL) << 5;
	value >>= r;
	shift = (value > 0xFFFF) << 4;
	value >>= shift;
	r |= shift;
	shift = (value > 0xFF) << 3;
	value >>= shift;
	r |= shift;
	shift = (value > 0xF) << 2;
	value >>= shift;
	r |= shift;
	shift = (value > 0x3) << 1;
	value >>= shift;
	r |= shift;
	r |= (__u32)(value >> 1);
	return r < HUATUO_LOG2_SLOTS - 1 ? r : HUATUO_LOG2_SLOTS - 1;
}

#endif
