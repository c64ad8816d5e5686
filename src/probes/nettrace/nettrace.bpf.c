// SPDX-License-Identifier: GPL-2.0
/* nettrace: one ring buffer record per socket read/write on a TCP socket, from the syscall
 * tracepoints (syscalls:sys_enter/exit of read, write, sendto, recvfrom), carrying the
 * connection (4-tuple, netns, the socket's address as its identity), the thread, the byte
 * count, the syscall's enter and exit times, srtt and the TCP sequence number of the message's
 * first byte: tcp_sock.write_seq before a send, copied_seq before a receive. The client's
 * write_seq of a request and the server's copied_seq of it are the same number, which is how
 * the two agents recognise one message without injecting anything (DeepFlow's method).
 * Up to `payload_bytes` of the buffer are captured for protocol inference. A close
 * (sock:inet_sock_set_state to TCP_CLOSE) is a record too, so user space flushes the
 * connection.
 *
 * Sampling is per connection (a hash of the socket's address against the knob's divisor), so a
 * kept connection keeps all its messages and spans stay whole. */
#include "huatuo.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define TCP_CLOSE 7
#define DIR_SEND 0
#define DIR_RECV 1
#define DIR_CLOSE 2
#define PAYLOAD_MAX 256

/* Bytes of each buffer captured (<= PAYLOAD_MAX); set at load time. */
const volatile __u32 payload_bytes = 128;
/* Records a second; 0 = no limit. */
const volatile __u32 max_per_sec = 0;

HUATUO_SAMPLING_KNOB

/* Layout shared with src/probes/nettrace/record.rs (MessageRecord::decode). */
struct msg_event {
	__u64 enter_ns;      /* 0: bpf_ktime_get_boot_ns() at sys_enter */
	__u64 exit_ns;       /* 8: at sys_exit */
	__u64 cgroup_id;     /* 16 */
	__u64 sk;            /* 24: the socket's address: the connection's identity */
	__u32 pid;           /* 32 */
	__u32 tid;           /* 36 */
	__u32 netns;         /* 40 */
	__u32 seq;           /* 44: first byte's TCP sequence number */
	__u32 bytes;         /* 48: syscall's return value (0 = EOF on receive) */
	__u32 srtt_us;       /* 52 */
	__u16 family;        /* 56 */
	__u16 sport;         /* 58: local port, host order */
	__u16 dport;         /* 60: remote port, host order */
	__u8 dir;            /* 62: DIR_* */
	__u8 captured;       /* 63: payload bytes valid */
	__u8 saddr[16];      /* 64: local address */
	__u8 daddr[16];      /* 80: remote address */
	char comm[16];       /* 96 */
	__u8 payload[PAYLOAD_MAX]; /* 112 */
};

/* A syscall in flight: what sys_exit needs from sys_enter. */
struct pending {
	__u64 sk;
	__u64 buf;
	__u64 enter_ns;
	__u32 seq;
	__u32 dir;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending);
} NT_PENDING SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} NT_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct huatuo_rate_window);
} NT_RATE SEC(".maps");

/* Index 0: records over the rate limit; index 1: records the ring buffer had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} NT_SUPPRESSED SEC(".maps");

static __always_inline void suppressed(__u32 index)
{
	__u64 *slot = bpf_map_lookup_elem(&NT_SUPPRESSED, &index);

	if (slot)
		*slot += 1;
}

/* The TCP socket behind `fd` of the current task, or NULL. */
static __always_inline struct sock *tcp_sock_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *file = NULL;
	struct socket *socket;
	struct sock *sk;
	unsigned int max_fds;
	umode_t mode;
	__u16 family;

	if (fd < 0)
		return NULL;
	max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned long)fd >= max_fds)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	socket = BPF_CORE_READ(file, private_data);
	if (!socket)
		return NULL;
	sk = BPF_CORE_READ(socket, sk);
	if (!sk)
		return NULL;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	return sk;
}

/* Connection-level sampling: keep the connection when its hash falls in 1/divisor. */
static __always_inline int sampled_in(struct sock *sk)
{
	struct huatuo_sampling *s = huatuo_sampling();
	__u64 h = (__u64)sk;

	if (!s || s->divisor <= 1)
		return 1;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ULL;
	return ((h >> 32) % s->divisor) == 0;
}

static __always_inline int enter(long fd, __u64 buf, __u32 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending p = {};
	struct sock *sk = tcp_sock_of_fd(fd);
	struct tcp_sock *tp;

	if (!sk || !sampled_in(sk))
		return 0;
	tp = (struct tcp_sock *)sk;
	p.sk = (__u64)sk;
	p.buf = buf;
	p.dir = dir;
	p.enter_ns = bpf_ktime_get_boot_ns();
	p.seq = dir == DIR_SEND ? BPF_CORE_READ(tp, write_seq) : BPF_CORE_READ(tp, copied_seq);
	bpf_map_update_elem(&NT_PENDING, &id, &p, BPF_ANY);
	return 0;
}

static __always_inline void fill_conn(struct msg_event *e, struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->srtt_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
	/* BPF_CORE_READ_INTO copies sizeof(*dst): the casts make that the address's size (a bare
	 * __u8 array would copy one byte). */
	if (e->family == AF_INET) {
		BPF_CORE_READ_INTO((__be32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)e->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->daddr, sk, __sk_common.skc_v6_daddr);
	}
}

static __always_inline struct msg_event *reserve(void)
{
	struct msg_event *e;
	__u32 zero = 0;

	if (!huatuo_take_token(bpf_map_lookup_elem(&NT_RATE, &zero), max_per_sec)) {
		suppressed(0);
		return NULL;
	}
	e = bpf_ringbuf_reserve(&NT_EVENTS, sizeof(*e), 0);
	if (!e)
		suppressed(1);
	return e;
}

static __always_inline int leave(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending *p = bpf_map_lookup_elem(&NT_PENDING, &id);
	struct msg_event *e;
	struct sock *sk;
	__u32 n;

	if (!p)
		return 0;
	/* Errors (EAGAIN of a non-blocking socket) are no message; 0 is EOF on a receive. */
	if (ret < 0 || (ret == 0 && p->dir == DIR_SEND)) {
		bpf_map_delete_elem(&NT_PENDING, &id);
		return 0;
	}
	e = reserve();
	if (!e) {
		bpf_map_delete_elem(&NT_PENDING, &id);
		return 0;
	}
	sk = (struct sock *)p->sk;
	e->enter_ns = p->enter_ns;
	e->exit_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->sk = p->sk;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->seq = p->seq;
	e->bytes = (__u32)ret;
	e->dir = p->dir;
	fill_conn(e, sk);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = ret < payload_bytes ? (__u32)ret : payload_bytes;
	if (n > 255)
		n = 255;
	n &= 0xff; /* the verifier's bound */
	e->captured = 0;
	if (n > 0 && bpf_probe_read_user(e->payload, n, (void *)p->buf) == 0)
		e->captured = n;
	bpf_map_delete_elem(&NT_PENDING, &id);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int on_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[0], ctx->args[1], DIR_SEND);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int on_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[0], ctx->args[1], DIR_SEND);
}

SEC("tracepoint/syscalls/sys_enter_read")
int on_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[0], ctx->args[1], DIR_RECV);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int on_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return enter(ctx->args[0], ctx->args[1], DIR_RECV);
}

SEC("tracepoint/syscalls/sys_exit_write")
int on_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int on_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_read")
int on_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int on_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return leave(ctx->ret);
}

/* A connection closing: flush its spans. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct msg_event *e;

	if (newstate != TCP_CLOSE || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	e = bpf_ringbuf_reserve(&NT_EVENTS, sizeof(*e), 0);
	if (!e) {
		suppressed(1);
		return 0;
	}
	__builtin_memset(e, 0, 112);
	e->enter_ns = bpf_ktime_get_boot_ns();
	e->exit_ns = e->enter_ns;
	e->sk = (__u64)sk;
	e->dir = DIR_CLOSE;
	fill_conn(e, (struct sock *)sk);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
