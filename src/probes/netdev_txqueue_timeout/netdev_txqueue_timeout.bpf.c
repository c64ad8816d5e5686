// SPDX-License-Identifier: GPL-2.0
/* netdev_txqueue_timeout: the TX watchdog's report (net:net_dev_xmit_timeout, fired by
 * dev_watchdog when a stopped TX queue did not restart within the device's watchdog_timeo).
 * The raw tracepoint record goes to a ring buffer; user space decodes `name`, `driver` and
 * `queue_index` with the tracepoint's format file, so a kernel that moves a field still
 * decodes. A timeout is rare (one per queue per watchdog period at most): no rate limit. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

#define TXQ_DATA_MAX 128

/* Layout shared with src/probes/netdev_txqueue_timeout/mod.rs (TimeoutRecord::decode). */
struct txq_event {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns() */
	__u32 len;     /* bytes of data copied */
	__u32 pad;
	__u8 data[TXQ_DATA_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} TXQ_EVENTS SEC(".maps");

/* Reports dropped because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} TXQ_LOST SEC(".maps");

SEC("tracepoint/net/net_dev_xmit_timeout")
int on_net_dev_xmit_timeout(void *ctx)
{
	struct txq_event *event;
	__u32 zero = 0;
	__u64 *lost;

	event = bpf_ringbuf_reserve(&TXQ_EVENTS, sizeof(*event), 0);
	if (!event) {
		lost = bpf_map_lookup_elem(&TXQ_LOST, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->pad = 0;
	/* The record's length is not passed: its fixed part is 20 bytes and the two names follow,
	 * so 128 bytes hold it; fall back to 64 near the end of a trace buffer page. */
	if (bpf_probe_read_kernel(event->data, TXQ_DATA_MAX, ctx) == 0)
		event->len = TXQ_DATA_MAX;
	else if (bpf_probe_read_kernel(event->data, 64, ctx) == 0)
		event->len = 64;
	else
		event->len = 0;
	bpf_ringbuf_submit(event, 0);
	return 0;
}
