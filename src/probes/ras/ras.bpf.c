// SPDX-License-Identifier: GPL-2.0
/* ras: hardware error reports (mce:mce_record, ras:mc_event, ras:non_standard_event,
 * ras:aer_event, ras:arm_event, irq_vectors:threshold_apic_entry) as upstream's ras.c: the raw
 * tracepoint record (up to 512 bytes) and its kind go to a ring buffer; user space decodes it
 * with the tracepoint's format file from tracefs. Classic tracepoints, so a program whose
 * tracepoint this kernel lacks still loads and is simply not attached. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

#define RAS_DATA_MAX 512

/* Layout shared with src/probes/ras/record.rs (RasRecord::decode). */
struct ras_event {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns() */
	__u32 kind;    /* RasKind in record.rs */
	__u32 len;     /* bytes of data copied */
	__u32 cpu;     /* where the report ran (upstream's THR `cpu`) */
	__u32 pad;
	__u8 data[RAS_DATA_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} RAS_EVENTS SEC(".maps");

/* Reports dropped because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} RAS_LOST SEC(".maps");

static __always_inline int emit(void *ctx, __u32 kind)
{
	struct ras_event *event;
	__u32 zero = 0;
	__u64 *lost;

	event = bpf_ringbuf_reserve(&RAS_EVENTS, sizeof(*event), 0);
	if (!event) {
		lost = bpf_map_lookup_elem(&RAS_LOST, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->kind = kind;
	event->cpu = bpf_get_smp_processor_id();
	event->pad = 0;
	/* The record's length is not passed: copy the most that is readable (a record near the end
	 * of a page of the trace buffer may not have 512 readable bytes after it). */
	if (bpf_probe_read_kernel(event->data, 512, ctx) == 0)
		event->len = 512;
	else if (bpf_probe_read_kernel(event->data, 256, ctx) == 0)
		event->len = 256;
	else if (bpf_probe_read_kernel(event->data, 128, ctx) == 0)
		event->len = 128;
	else
		event->len = 0;
	bpf_ringbuf_submit(event, 0);
	return 0;
}

SEC("tracepoint/mce/mce_record")
int on_mce_record(void *ctx) { return emit(ctx, 0); }

SEC("tracepoint/ras/mc_event")
int on_mc_event(void *ctx) { return emit(ctx, 1); }

SEC("tracepoint/ras/non_standard_event")
int on_non_standard_event(void *ctx) { return emit(ctx, 2); }

SEC("tracepoint/ras/aer_event")
int on_aer_event(void *ctx) { return emit(ctx, 3); }

SEC("tracepoint/irq_vectors/threshold_apic_entry")
int on_threshold_apic_entry(void *ctx) { return emit(ctx, 4); }

SEC("tracepoint/ras/arm_event")
int on_arm_event(void *ctx) { return emit(ctx, 5); }
