// SPDX-License-Identifier: GPL-2.0
/* dropwatch: one ring buffer record per dropped packet, from skb:kfree_skb (tp_btf). Frees that
 * are not drops (SKB_CONSUMED, SKB_NOT_DROPPED_YET) and drops without a reason
 * (SKB_DROP_REASON_NOT_SPECIFIED: the generic kfree_skb() of many error paths) are skipped.
 * Every remaining drop counts in DROPWATCH_REASONS. The L3/L4 header is decoded here and the
 * configured filters (protocols, ports, reasons: DROPWATCH_FILTER_*) applied; of the drops that
 * pass, at most `max_per_sec` records a second are queued (a token counter in DROPWATCH_RATE),
 * the rest count in DROPWATCH_SUPPRESSED. Only a queued record pays for the kernel stack
 * (bpf_get_stack into a per-CPU scratch record, then a ring record sized to the frames taken).
 * Reason names and symbols are user space's. */
#include "huatuo.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* Adaptive sampling: 1-in-N drops go on past the reason check, each counted N times (in
 * DROPWATCH_REASONS, and as N-1 suppressed besides the record it may become). */
HUATUO_SAMPLING_KNOB

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_ARP 0x0806
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define REASON_SLOTS 256
/* Kernel stack frames kept per drop (a drop in softirq under a syscall is ~30-40 deep). */
#define STACK_DEPTH 64

/* Records a second; 0 = no limit. Set at load time. */
const volatile __u32 max_per_sec = 100;
/* Set at load time: 1 when the matching DROPWATCH_FILTER_* map lists what is wanted. */
const volatile __u32 filter_protocols = 0;
const volatile __u32 filter_ports = 0;
const volatile __u32 filter_reasons = 0;

/* Bytes of the packet copied from its first header (upstream's PKT_RAW_LEN): enough for Ethernet,
 * IPv6 and a TCP header with options. */
#define RAW_LEN 120

/* Layout shared with src/probes/dropwatch/record.rs (DropRecord::decode). */
struct drop_event {
	__u64 boot_ns;   /* 0 */
	__u64 location;  /* 8: instruction pointer of the kfree_skb caller */
	__u64 cgroup_id; /* 16: current task's cgroup v2 id */
	__u64 skb_addr;  /* 24 */
	__u64 memcg_css; /* 32: skb->sk->sk_memcg (&memcg->css), 0 when none */
	__u64 netns_cookie; /* 40: net_cookie of the device's (else socket's) netns */
	__u32 reason;    /* 48 */
	__u32 pid;       /* 52: current tgid */
	__u32 tid;       /* 56 */
	__u32 netns;     /* 60: netns inode (device's, else socket's) */
	__u32 ifindex;   /* 64 */
	__u32 dev_flags; /* 68: dev->flags */
	__u32 queue_mapping; /* 72: skb->queue_mapping */
	__u32 len;       /* 76: skb->len */
	__u16 l3proto;   /* 80: skb->protocol, host order */
	__u8 l4proto;    /* 82: IPPROTO_* (0 unknown) */
	__u8 sk_state;   /* 83: skb->sk's TCP state (0 without a TCP socket) */
	__u16 sport;     /* 84: host order */
	__u16 dport;     /* 86 */
	__u8 saddr[16];  /* 88: IPv4 in the first 4 bytes */
	__u8 daddr[16];  /* 104 */
	char comm[16];   /* 120 */
	char dev[16];    /* 136 */
	__u32 dev_state; /* 152: low bits of dev->state (__LINK_STATE_*) */
	__u32 stack_bytes; /* 156: bytes of `stack` filled (frames * 8) */
	__u16 raw_len;   /* 160: bytes of `raw` filled */
	__u8 raw_is_mac; /* 162: 1 when `raw` starts at the Ethernet header, 0 at the IP header */
	__u8 pad[5];     /* 163 */
	__u8 raw[RAW_LEN]; /* 168 */
	__u64 stack[STACK_DEPTH]; /* 288: return addresses, innermost first; only
				   * stack_bytes of them are sent */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} DROPWATCH_EVENTS SEC(".maps");

/* The record being built: too big for the BPF stack. A tracing program does not nest on a CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_event);
} DROPWATCH_SCRATCH SEC(".maps");

/* Index 0: the current one-second window and the records queued in it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_rate_window);
} DROPWATCH_RATE SEC(".maps");

/* Index 0: drops over the rate limit; index 1: drops the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} DROPWATCH_SUPPRESSED SEC(".maps");

/* Drops per reason (reasons >= 255, i.e. subsystem reasons, in slot 255). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} DROPWATCH_REASONS SEC(".maps");

/* Wanted IP protocols (index: IPPROTO_*, value 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} DROPWATCH_FILTER_PROTOCOLS SEC(".maps");

/* Wanted TCP/UDP ports (source or destination), host order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} DROPWATCH_FILTER_PORTS SEC(".maps");

/* Wanted reasons (index: reason slot as in DROPWATCH_REASONS, value 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} DROPWATCH_FILTER_REASONS SEC(".maps");

/* Ignored reasons (index: reason slot, value 1): drops that are housekeeping, not lost packets
 * (QUEUE_PURGE: a closing socket's queues). Counted, never recorded. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} DROPWATCH_IGNORE_REASONS SEC(".maps");

static __always_inline int listed(void *map, __u32 index)
{
	__u32 *on = bpf_map_lookup_elem(map, &index);

	return on && *on;
}

/* 1 when the drop passes the configured filters. */
static __always_inline int wanted(struct drop_event *e, __u32 slot)
{
	if (listed(&DROPWATCH_IGNORE_REASONS, slot))
		return 0;
	if (filter_reasons && !listed(&DROPWATCH_FILTER_REASONS, slot))
		return 0;
	if (filter_protocols && !listed(&DROPWATCH_FILTER_PROTOCOLS, e->l4proto))
		return 0;
	if (filter_ports) {
		__u16 sport = e->sport, dport = e->dport;

		if (e->l4proto != IPPROTO_TCP_ && e->l4proto != IPPROTO_UDP_)
			return 0;
		if (!bpf_map_lookup_elem(&DROPWATCH_FILTER_PORTS, &sport) &&
		    !bpf_map_lookup_elem(&DROPWATCH_FILTER_PORTS, &dport))
			return 0;
	}
	return 1;
}

static __always_inline void bump(void *map, __u32 index, __u32 weight)
{
	__u64 *value = bpf_map_lookup_elem(map, &index);

	if (value)
		*value += weight;
}

/* 1 when a record may be queued this second. */
static __always_inline int take_token(void)
{
	__u32 zero = 0;

	return huatuo_take_token(bpf_map_lookup_elem(&DROPWATCH_RATE, &zero), max_per_sec);
}

static __always_inline void decode_headers(struct drop_event *e, struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 network = BPF_CORE_READ(skb, network_header);
	__u16 transport = BPF_CORE_READ(skb, transport_header);
	__u16 ports[2] = {};
	__u8 l4 = 0;

	if (!head || network == (__u16)~0U)
		return;
	if (e->l3proto == ETH_P_IP) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + network))
			return;
		if (ip.version != 4)
			return;
		l4 = ip.protocol;
		__builtin_memcpy(e->saddr, &ip.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.daddr, 4);
		transport = network + ip.ihl * 4;
	} else if (e->l3proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + network))
			return;
		l4 = ip6.nexthdr;
		bpf_probe_read_kernel(e->saddr, 16, &ip6.saddr);
		bpf_probe_read_kernel(e->daddr, 16, &ip6.daddr);
		if (transport == (__u16)~0U || transport <= network)
			transport = network + sizeof(ip6);
	} else {
		return;
	}
	e->l4proto = l4;
	if (l4 != IPPROTO_TCP_ && l4 != IPPROTO_UDP_)
		return;
	/* TCP and UDP both start with the source and destination ports. */
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + transport))
		return;
	e->sport = bpf_ntohs(ports[0]);
	e->dport = bpf_ntohs(ports[1]);
}

/* The packet's first RAW_LEN bytes for user space's decoder (upstream's `layers`): from the
 * Ethernet header when the skb has one (received packets), else from the IP header. */
static __always_inline void copy_raw(struct drop_event *e, struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 network = BPF_CORE_READ(skb, network_header);
	__u16 mac = BPF_CORE_READ(skb, mac_header);
	__u16 start = network;

	if (!head || (e->l3proto != ETH_P_IP && e->l3proto != ETH_P_IPV6 && e->l3proto != ETH_P_ARP))
		return;
	if (BPF_CORE_READ(skb, mac_len) > 0 && mac != (__u16)~0U) {
		start = mac;
		e->raw_is_mac = 1;
	} else if (network == (__u16)~0U) {
		return;
	}
	if (bpf_probe_read_kernel(e->raw, RAW_LEN, head + start))
		return;
	e->raw_len = RAW_LEN;
}

/* The socket's memory cgroup (upstream's memory_cgroup_css_addr: css is mem_cgroup's first
 * member, so the two addresses are one). */
static __always_inline __u64 sk_memcg_css(struct sock *sk)
{
	if (!sk || !bpf_core_field_exists(sk->sk_memcg))
		return 0;
	return (__u64)BPF_CORE_READ(sk, sk_memcg);
}

static __always_inline __u64 net_cookie(struct net *net)
{
	if (!net || !bpf_core_field_exists(net->net_cookie))
		return 0;
	return BPF_CORE_READ(net, net_cookie);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(on_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *sk)
{
	struct net_device *dev;
	struct sock *owner;
	struct drop_event *e;
	__u32 slot = reason, zero = 0;
	__u64 id, size;
	__u32 weight;
	long taken;

	if (reason == SKB_NOT_DROPPED_YET || reason == SKB_CONSUMED ||
	    reason == SKB_DROP_REASON_NOT_SPECIFIED)
		return 0;
	/* First, so a throttled storm costs little more than this check per drop. */
	weight = huatuo_sample_weight();
	if (!weight)
		return 0;
	if (slot >= REASON_SLOTS - 1)
		slot = REASON_SLOTS - 1;
	bump(&DROPWATCH_REASONS, slot, weight);
	e = bpf_map_lookup_elem(&DROPWATCH_SCRATCH, &zero);
	if (!e)
		return 0;
	/* The header only: the stack part is overwritten and sent only as far as it is filled. */
	__builtin_memset(e, 0, offsetof(struct drop_event, stack));
	e->l3proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	decode_headers(e, skb);
	if (!wanted(e, slot))
		return 0;
	if (!take_token()) {
		bump(&DROPWATCH_SUPPRESSED, 0, weight);
		return 0;
	}
	/* The record stands for `weight` drops: the others are suppressed by sampling. */
	if (weight > 1)
		bump(&DROPWATCH_SUPPRESSED, 0, weight - 1);
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->location = (__u64)location;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->reason = reason;
	id = bpf_get_current_pid_tgid();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->skb_addr = (__u64)skb;
	e->queue_mapping = BPF_CORE_READ(skb, queue_mapping);
	e->len = BPF_CORE_READ(skb, len);
	owner = BPF_CORE_READ(skb, sk);
	e->memcg_css = sk_memcg_css(owner);
	if (owner && e->l4proto == IPPROTO_TCP_)
		e->sk_state = BPF_CORE_READ(owner, __sk_common.skc_state);
	dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		e->ifindex = BPF_CORE_READ(dev, ifindex);
		BPF_CORE_READ_INTO(&e->dev, dev, name);
		e->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
		e->netns_cookie = net_cookie(BPF_CORE_READ(dev, nd_net.net));
		e->dev_flags = BPF_CORE_READ(dev, flags);
		e->dev_state = (__u32)BPF_CORE_READ(dev, state);
	}
	if (!e->netns) {
		if (!sk)
			sk = owner;
		if (sk) {
			e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
			e->netns_cookie = net_cookie(BPF_CORE_READ(sk, __sk_common.skc_net.net));
		}
	}
	copy_raw(e, skb);
	taken = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	size = taken > 0 ? (__u64)taken : 0;
	if (size > sizeof(e->stack))
		size = sizeof(e->stack);
	e->stack_bytes = size;
	size += offsetof(struct drop_event, stack);
	if (bpf_ringbuf_output(&DROPWATCH_EVENTS, e, size, BPF_RB_NO_WAKEUP))
		bump(&DROPWATCH_SUPPRESSED, 1, 1);
	return 0;
}
