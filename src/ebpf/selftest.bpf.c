// SPDX-License-Identifier: GPL-2.0
/* Programs of every hook kind the shared loader supports, for the root test that checks each one
 * attaches or degrades to `unsupported` with a clear reason (kprobes and fentry are missing or
 * locked on some kernels, e.g. CONFIG_KPROBES off). Never loaded by the agent. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

SEC("kprobe/do_nanosleep")
int selftest_kprobe(void *ctx)
{
	return 0;
}

SEC("fentry/do_nanosleep")
int BPF_PROG(selftest_fentry)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_nanosleep")
int selftest_tracepoint(void *ctx)
{
	return 0;
}

SEC("raw_tp/sched_switch")
int selftest_raw_tp(void *ctx)
{
	return 0;
}
