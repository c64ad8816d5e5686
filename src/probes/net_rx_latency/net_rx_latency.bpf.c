// SPDX-License-Identifier: GPL-2.0
/* net_rx_latency: the age of received IPv4/IPv6 TCP packets (now - skb->tstamp) at three stages
 * of the receive path, all tp_btf (kprobes and fentry are not available everywhere):
 *   netif     net:netif_receive_skb      (upstream: the same tracepoint)
 *   tcp       tcp:tcp_probe              (upstream: kprobe tcp_v4_rcv; tcp_probe fires at the
 *                                         start of tcp_rcv_established with sk and skb, for
 *                                         IPv4 and IPv6 segments of established sockets,
 *                                         also when they are processed from the backlog)
 *   usercopy skb:skb_copy_datagram_iovec (upstream: the same tracepoint)
 * A packet at least NETRX_CONFIG.threshold_ns[stage] old, outside the excluded network
 * namespace, is counted in NETRX_COUNT[stage] (weighted by the sampling knob) and, within
 * `max_per_sec` records a second for all stages together, queued in NETRX_EVENTS.
 *
 * skb->tstamp holds one of three clocks (enum skb_tstamp_type since 6.11, the 1-bit
 * mono_delivery_time 5.18-6.10, neither before: always realtime). The RX software timestamp
 * (net_timestamp_check, turned on system wide by the agent's SO_TIMESTAMPING socket) is
 * realtime; a locally sent packet still carries its sender's monotonic (or TAI, SO_TXTIME)
 * delivery time until ip_local_deliver replaces it. BPF has no realtime clock: realtime "now" is
 * bpf_ktime_get_tai_ns() minus the TAI offset user space writes (an exact number of seconds,
 * unlike a monotonic-to-realtime offset, which NTP slews and steps move). */
#include "huatuo.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define STAGE_NETIF 0
#define STAGE_TCP 1
#define STAGE_USERCOPY 2
#define STAGES 3

#define CLOCK_REALTIME_ 0
#define CLOCK_MONOTONIC_ 1
#define CLOCK_TAI_ 2

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6
#define AF_INET 2
#define AF_INET6 10

/* Records a second, all stages together (upstream: 100); 0 = no limit. Set at load time. */
const volatile __u32 max_per_sec = 100;

HUATUO_SAMPLING_KNOB

/* Written by user space before attach, the TAI offset again whenever it changes. Layout shared
 * with src/probes/net_rx_latency/mod.rs (RxConfig). */
struct rx_config {
	__u64 threshold_ns[STAGES]; /* 0: stage off */
	__s64 tai_offset_ns;        /* CLOCK_TAI - CLOCK_REALTIME */
	__u32 excluded_netns;       /* netns inode whose packets are ignored (the host's); 0: none */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_config);
} NETRX_CONFIG SEC(".maps");

/* Layout shared with src/probes/net_rx_latency/record.rs (RxRecord::decode). */
struct rx_event {
	__u64 boot_ns;       /* 0 */
	__u64 latency_ns;    /* 8 */
	__u64 cgroup_id;     /* 16: current task's cgroup v2 id (usercopy stage only) */
	__u64 netns_cookie;  /* 24 */
	__u32 pid;           /* 32: current tgid (usercopy stage only) */
	__u32 netns;         /* 36: netns inode (socket's, else device's) */
	__u32 len;           /* 40: skb->len */
	__u32 seq;           /* 44: host order */
	__u32 ack_seq;       /* 48: host order */
	__u16 family;        /* 52: AF_INET / AF_INET6 */
	__u16 sport;         /* 54: host order */
	__u16 dport;         /* 56: host order */
	__u8 stage;          /* 58: STAGE_* */
	__u8 state;          /* 59: the socket's TCP state (0 at netif, as upstream) */
	__u8 clock;          /* 60: CLOCK_*_ of the stamp */
	__u8 pad[3];         /* 61 */
	__u8 saddr[16];      /* 64: IPv4 in the first 4 bytes */
	__u8 daddr[16];      /* 80 */
	char comm[16];       /* 96: usercopy stage only, else "-" */
	char dev[16];        /* 112: "-" without a device */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 128 * 1024);
} NETRX_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_rate_window);
} NETRX_RATE SEC(".maps");

/* Late packets per stage, weighted: what huatuo_bamai_net_rx_latency_total exports. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAGES);
	__type(key, __u32);
	__type(value, __u64);
} NETRX_COUNT SEC(".maps");

/* Index 0: records over the rate limit; index 1: records the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} NETRX_SUPPRESSED SEC(".maps");

/* 5.18-6.10 kernels: the 1-bit predecessor of tstamp_type. */
struct sk_buff___mdt {
	__u8 mono_delivery_time : 1;
} __attribute__((preserve_access_index));

static __always_inline void add(void *map, __u32 index, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(map, &index);

	if (slot)
		*slot += value;
}

/* The clock skb->tstamp is in (CO-RE: whichever field this kernel has). */
static __always_inline __u8 tstamp_clock(const struct sk_buff *skb)
{
	if (bpf_core_field_exists(skb->tstamp_type))
		return BPF_CORE_READ_BITFIELD_PROBED(skb, tstamp_type);
	if (bpf_core_field_exists(((struct sk_buff___mdt *)skb)->mono_delivery_time))
		return BPF_CORE_READ_BITFIELD_PROBED((struct sk_buff___mdt *)skb, mono_delivery_time)
			       ? CLOCK_MONOTONIC_
			       : CLOCK_REALTIME_;
	return CLOCK_REALTIME_;
}

/* How old the packet is, 0 without a stamp or with one from the future. */
static __always_inline __u64 skb_age(const struct sk_buff *skb, const struct rx_config *cfg,
				     __u8 *clock)
{
	__u64 stamp = BPF_CORE_READ(skb, tstamp);
	__u64 now;

	if (!stamp)
		return 0;
	*clock = tstamp_clock(skb);
	if (*clock == CLOCK_MONOTONIC_)
		now = bpf_ktime_get_ns();
	else if (*clock == CLOCK_TAI_)
		now = bpf_ktime_get_tai_ns();
	else
		now = bpf_ktime_get_tai_ns() - cfg->tai_offset_ns;
	return now > stamp ? now - stamp : 0;
}

/* Addresses and ports of an IPv4/IPv6 TCP packet whose IP header is at `nh`; 0 when it is not
 * one. */
static __always_inline int parse_tcp(struct rx_event *e, const struct sk_buff *skb,
				     const unsigned char *nh)
{
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	const unsigned char *th;
	struct tcphdr tcp;
	__u8 first;

	if (bpf_probe_read_kernel(&first, 1, nh))
		return 0;
	if (proto == ETH_P_IP && first >> 4 == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh) || ip.protocol != IPPROTO_TCP_ ||
		    ip.ihl < 5)
			return 0;
		e->family = AF_INET;
		__builtin_memcpy(e->saddr, &ip.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.daddr, 4);
		th = nh + ip.ihl * 4;
	} else if (proto == ETH_P_IPV6 && first >> 4 == 6) {
		struct ipv6hdr ip6;

		/* A TCP header right after the fixed header; extension headers are not followed. */
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh) || ip6.nexthdr != IPPROTO_TCP_)
			return 0;
		e->family = AF_INET6;
		__builtin_memcpy(e->saddr, &ip6.saddr, 16);
		__builtin_memcpy(e->daddr, &ip6.daddr, 16);
		th = nh + sizeof(ip6);
	} else {
		return 0;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), th))
		return 0;
	e->sport = bpf_ntohs(tcp.source);
	e->dport = bpf_ntohs(tcp.dest);
	e->seq = bpf_ntohl(tcp.seq);
	e->ack_seq = bpf_ntohl(tcp.ack_seq);
	return 1;
}

/* `sk`: the receiving socket where the stage knows it (tcp: the tracepoint's, usercopy: the
 * skb's owner), NULL at netif. */
static __always_inline int handle(const struct sk_buff *skb, const struct sock *sk, __u32 stage)
{
	struct rx_event scratch = {}, *e;
	struct rx_config *cfg;
	struct net_device *dev;
	const unsigned char *nh;
	__u32 zero = 0, weight;
	__u64 age, threshold;
	__u8 clock = CLOCK_REALTIME_;

	weight = huatuo_sample_weight();
	if (!weight)
		return 0;
	cfg = bpf_map_lookup_elem(&NETRX_CONFIG, &zero);
	if (!cfg || stage >= STAGES)
		return 0;
	threshold = cfg->threshold_ns[stage];
	if (!threshold)
		return 0;
	age = skb_age(skb, cfg, &clock);
	if (age < threshold)
		return 0;

	/* At netif the network header offset is not reset yet: skb->data is the IP header. */
	if (stage == STAGE_NETIF)
		nh = BPF_CORE_READ(skb, data);
	else {
		__u16 off = BPF_CORE_READ(skb, network_header);

		if (off == (__u16)~0U)
			return 0;
		nh = BPF_CORE_READ(skb, head) + off;
	}
	if (!parse_tcp(&scratch, skb, nh))
		return 0;

	dev = BPF_CORE_READ(skb, dev);
	if (sk) {
		scratch.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
		scratch.netns_cookie = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
		scratch.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	} else if (dev) {
		scratch.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
		scratch.netns_cookie = BPF_CORE_READ(dev, nd_net.net, net_cookie);
	}
	if (cfg->excluded_netns && scratch.netns == cfg->excluded_netns)
		return 0;

	add(&NETRX_COUNT, stage, weight);
	if (!huatuo_take_token(bpf_map_lookup_elem(&NETRX_RATE, &zero), max_per_sec)) {
		add(&NETRX_SUPPRESSED, 0, 1);
		return 0;
	}
	e = bpf_ringbuf_reserve(&NETRX_EVENTS, sizeof(*e), 0);
	if (!e) {
		add(&NETRX_SUPPRESSED, 1, 1);
		return 0;
	}
	scratch.boot_ns = bpf_ktime_get_boot_ns();
	scratch.latency_ns = age;
	scratch.len = BPF_CORE_READ(skb, len);
	scratch.stage = stage;
	scratch.clock = clock;
	scratch.comm[0] = '-';
	scratch.dev[0] = '-';
	if (stage == STAGE_USERCOPY) {
		/* Only here is the current task the packet's receiver. */
		scratch.pid = bpf_get_current_pid_tgid() >> 32;
		scratch.cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(&scratch.comm, sizeof(scratch.comm));
	}
	if (dev)
		bpf_probe_read_kernel_str(scratch.dev, sizeof(scratch.dev), dev->name);
	__builtin_memcpy(e, &scratch, sizeof(scratch));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(on_netif_receive_skb, struct sk_buff *skb)
{
	return handle(skb, NULL, STAGE_NETIF);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(on_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	return handle(skb, sk, STAGE_TCP);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(on_skb_copy_datagram_iovec, const struct sk_buff *skb, int len)
{
	return handle(skb, BPF_CORE_READ(skb, sk), STAGE_USERCOPY);
}
