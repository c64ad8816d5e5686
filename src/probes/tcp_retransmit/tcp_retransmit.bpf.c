// SPDX-License-Identifier: GPL-2.0
/* tcp_retransmit: one ring buffer record per TCP retransmission, from tcp:tcp_retransmit_skb
 * and tcp:tcp_retransmit_synack (tp_btf). Every retransmit is counted (per kind, weighted by
 * the sampling knob); at most `max_per_sec` records a second are queued, the rest counted as
 * suppressed. A tail loss probe that resends the last segment goes through
 * __tcp_retransmit_skb too (upstream needs a kprobe on tcp_send_loss_probe for it): the record
 * carries icsk_pending, which is still ICSK_TIME_LOSS_PROBE while the probe timer's handler
 * runs, so user space can tell it.
 *
 * For upstream's drop_location, skb:kfree_skb (tp_btf) remembers when a TCP segment of each
 * flow was last dropped in this host's stack (an LRU keyed by the packet's 4-tuple); a
 * retransmit record carries the time of the latest drop of its flow in either direction. */
#include "huatuo.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define KIND_SKB 0
#define KIND_SYNACK 1

/* Records a second; 0 = no limit. Set at load time. */
const volatile __u32 max_per_sec = 100;

HUATUO_SAMPLING_KNOB

/* Layout shared with src/probes/tcp_retransmit/record.rs (RetransmitRecord::decode). */
struct retransmit_event {
	__u64 boot_ns;          /* 0 */
	__u64 cgroup_id;        /* 8: the socket's cgroup v2 id (0 when unknown) */
	__u64 skb_addr;         /* 16 */
	__u32 pid;              /* 24: current tgid (often a softirq's or timer's host) */
	__u32 netns;            /* 28: the socket's netns inode */
	__u32 seq;              /* 32 */
	__u32 end_seq;          /* 36 */
	__u32 ack_seq;          /* 40: rcv_nxt */
	__u32 reord_seen;       /* 44 */
	__u32 dsack_dups;       /* 48 */
	__s32 err;              /* 52: what the retransmit returned (0 = sent) */
	__u16 family;           /* 56 */
	__u16 sport;            /* 58: host order */
	__u16 dport;            /* 60: host order */
	__u16 tcp_flags;        /* 62 */
	__u8 state;             /* 64 */
	__u8 ca_state;          /* 65 */
	__u8 icsk_pending;      /* 66 */
	__u8 icsk_retransmits;  /* 67 */
	__u8 kind;              /* 68: KIND_SKB / KIND_SYNACK */
	__u8 pad[3];            /* 69 */
	__u8 saddr[16];         /* 72: IPv4 in the first 4 bytes */
	__u8 daddr[16];         /* 88 */
	char comm[16];          /* 104 */
	__u64 memcg_css;        /* 120: sk->sk_memcg (upstream's memory_cgroup_css_addr) */
	__u64 netns_cookie;     /* 128 */
	__u64 drop_boot_ns;     /* 136: latest kfree_skb of this flow (0 = none remembered) */
};

/* A flow as a packet sees it: source first, ports in host order. */
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 pad;
};

/* Flows with a recent host drop: key -> bpf_ktime_get_boot_ns() of the drop. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct flow_key);
	__type(value, __u64);
} TCPR_DROPS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 128 * 1024);
} TCPR_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_rate_window);
} TCPR_RATE SEC(".maps");

/* Retransmits per kind (index KIND_*), weighted: what the counters export. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} TCPR_COUNT SEC(".maps");

/* Index 0: records over the rate limit; index 1: records the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} TCPR_SUPPRESSED SEC(".maps");

static __always_inline void add(void *map, __u32 index, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(map, &index);

	if (slot)
		*slot += value;
}

/* Counts the retransmit and reserves a record, or returns NULL (sampled out, over the rate
 * limit, ring full). */
static __always_inline struct retransmit_event *begin(__u32 kind)
{
	struct retransmit_event *e;
	__u32 zero = 0;
	__u32 weight = huatuo_sample_weight();

	if (!weight)
		return NULL;
	add(&TCPR_COUNT, kind, weight);
	if (!huatuo_take_token(bpf_map_lookup_elem(&TCPR_RATE, &zero), max_per_sec)) {
		add(&TCPR_SUPPRESSED, 0, 1);
		return NULL;
	}
	e = bpf_ringbuf_reserve(&TCPR_EVENTS, sizeof(*e), 0);
	if (!e) {
		add(&TCPR_SUPPRESSED, 1, 1);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->kind = kind;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	return e;
}

/* Addresses, ports, family and netns of a socket (or request socket: same sock_common). */
static __always_inline void fill_common(struct retransmit_event *e, const struct sock_common *c)
{
	e->family = BPF_CORE_READ(c, skc_family);
	e->sport = BPF_CORE_READ(c, skc_num);
	e->dport = __builtin_bswap16(BPF_CORE_READ(c, skc_dport));
	e->state = BPF_CORE_READ(c, skc_state);
	e->netns = BPF_CORE_READ(c, skc_net.net, ns.inum);
	if (e->family == AF_INET) {
		__u32 saddr = BPF_CORE_READ(c, skc_rcv_saddr);
		__u32 daddr = BPF_CORE_READ(c, skc_daddr);

		__builtin_memcpy(e->saddr, &saddr, 4);
		__builtin_memcpy(e->daddr, &daddr, 4);
	} else if (e->family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, c, skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, c, skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline __u64 sk_memcg_css(const struct sock *sk)
{
	/* css is mem_cgroup's first member: the two addresses are one (as dropwatch). */
	if (!bpf_core_field_exists(sk->sk_memcg))
		return 0;
	return (__u64)BPF_CORE_READ(sk, sk_memcg);
}

static __always_inline __u64 net_cookie(const struct sock_common *c)
{
	struct net *net = BPF_CORE_READ(c, skc_net.net);

	if (!net || !bpf_core_field_exists(net->net_cookie))
		return 0;
	return BPF_CORE_READ(net, net_cookie);
}

/* The latest remembered drop of the record's flow, either direction. */
static __always_inline __u64 last_drop(const struct retransmit_event *e)
{
	struct flow_key key = {};
	__u64 *at, latest = 0;

	key.family = e->family;
	__builtin_memcpy(key.saddr, e->saddr, 16);
	__builtin_memcpy(key.daddr, e->daddr, 16);
	key.sport = e->sport;
	key.dport = e->dport;
	at = bpf_map_lookup_elem(&TCPR_DROPS, &key);
	if (at)
		latest = *at;
	__builtin_memcpy(key.saddr, e->daddr, 16);
	__builtin_memcpy(key.daddr, e->saddr, 16);
	key.sport = e->dport;
	key.dport = e->sport;
	at = bpf_map_lookup_elem(&TCPR_DROPS, &key);
	if (at && *at > latest)
		latest = *at;
	return latest;
}

static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	struct cgroup *cgroup = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);

	return cgroup ? BPF_CORE_READ(cgroup, kn, id) : 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(on_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	const struct inet_connection_sock *icsk = (const void *)sk;
	const struct tcp_sock *tp = (const void *)sk;
	struct retransmit_event *e;
	struct tcp_skb_cb cb;

	e = begin(KIND_SKB);
	if (!e)
		return 0;
	fill_common(e, &sk->__sk_common);
	e->cgroup_id = sock_cgroup_id(sk);
	e->skb_addr = (__u64)skb;
	e->err = err;
	if (!bpf_probe_read_kernel(&cb, sizeof(cb), (void *)skb + bpf_core_field_offset(skb->cb))) {
		e->seq = cb.seq;
		e->end_seq = cb.end_seq;
		e->tcp_flags = cb.tcp_flags;
	}
	e->ack_seq = BPF_CORE_READ(tp, rcv_nxt);
	e->reord_seen = BPF_CORE_READ(tp, reord_seen);
	e->dsack_dups = BPF_CORE_READ(tp, dsack_dups);
	e->ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	e->icsk_pending = BPF_CORE_READ(icsk, icsk_pending);
	e->icsk_retransmits = BPF_CORE_READ(icsk, icsk_retransmits);
	e->memcg_css = sk_memcg_css(sk);
	e->netns_cookie = net_cookie(&sk->__sk_common);
	e->drop_boot_ns = last_drop(e);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(on_tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	struct retransmit_event *e;

	e = begin(KIND_SYNACK);
	if (!e)
		return 0;
	/* The listener is `sk`; the connection being set up is the request socket. */
	fill_common(e, &req->__req_common);
	e->cgroup_id = sock_cgroup_id(sk);
	e->icsk_retransmits = BPF_CORE_READ(req, num_retrans);
	e->memcg_css = sk_memcg_css(sk);
	e->netns_cookie = net_cookie(&req->__req_common);
	e->drop_boot_ns = last_drop(e);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define IPPROTO_TCP_ 6

/* Remembers the flow of every dropped TCP segment (not the freeing of consumed ones). Runs per
 * drop, so it carries the sampling weight check too (a sampled-out drop is not remembered). */
SEC("tp_btf/kfree_skb")
int BPF_PROG(on_drop_flow, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	unsigned char *head;
	struct flow_key key = {};
	__u16 network, transport, proto, ports[2];
	__u64 now;

	if (reason == SKB_NOT_DROPPED_YET || reason == SKB_CONSUMED)
		return 0;
	if (!huatuo_sample_weight())
		return 0;
	head = BPF_CORE_READ(skb, head);
	network = BPF_CORE_READ(skb, network_header);
	transport = BPF_CORE_READ(skb, transport_header);
	proto = __builtin_bswap16(BPF_CORE_READ(skb, protocol));
	if (!head || network == (__u16)~0U)
		return 0;
	if (proto == ETH_P_IP_) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + network) || ip.version != 4 ||
		    ip.protocol != IPPROTO_TCP_)
			return 0;
		key.family = AF_INET;
		__builtin_memcpy(key.saddr, &ip.saddr, 4);
		__builtin_memcpy(key.daddr, &ip.daddr, 4);
		transport = network + ip.ihl * 4;
	} else if (proto == ETH_P_IPV6_) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + network) ||
		    ip6.nexthdr != IPPROTO_TCP_)
			return 0;
		key.family = AF_INET6;
		bpf_probe_read_kernel(key.saddr, 16, &ip6.saddr);
		bpf_probe_read_kernel(key.daddr, 16, &ip6.daddr);
		if (transport == (__u16)~0U || transport <= network)
			transport = network + sizeof(ip6);
	} else {
		return 0;
	}
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + transport))
		return 0;
	key.sport = __builtin_bswap16(ports[0]);
	key.dport = __builtin_bswap16(ports[1]);
	now = bpf_ktime_get_boot_ns();
	bpf_map_update_elem(&TCPR_DROPS, &key, &now, BPF_ANY);
	return 0;
}
