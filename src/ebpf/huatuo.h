/* Shared header for every HUATUO BPF program: kernel types (CO-RE), libbpf helpers and small
 * helpers that keep hot paths cheap. Include this first in each probe's .bpf.c. */
#ifndef HUATUO_BPF_H
#define HUATUO_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define HUATUO_NR_ZONES 4

/* Sampling knob every probe honours: 1 = every event, N = 1-in-N (set from user space through .rodata
 * at load time or through the probe's config map at run time). */
static __always_inline int huatuo_sampled(__u32 one_in_n)
{
	if (one_in_n <= 1)
		return 1;
	return (bpf_get_prandom_u32() % one_in_n) == 0;
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

#endif
