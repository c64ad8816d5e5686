//! Root tests of the net_rx_latency probe against the real kernel (in-process probes; the tests
//! read their event buses):
//! - usercopy: a TCP receiver in a network namespace that sleeps before reading (IPv4 and IPv6,
//!   over a veth pair from a client namespace) is a RX_STAGE_USERCOPY document with its
//!   addresses, ports, netns inode, comm/pid and a latency of at least the sleep; a receiver
//!   that reads at once is none; a slow receiver in the host namespace is none by default and
//!   one with `excluded_host_netns = false`.
//! - netif and tcp: packets that are already old when they arrive. An AF_PACKET socket sends
//!   hand-made TCP frames with an SO_TXTIME delivery time half a second in the past (in the
//!   realtime, monotonic or TAI clock) from one end of a veth pair to the other, both in one
//!   namespace (the kernel keeps skb->tstamp on a same-namespace forward): each is a
//!   RX_STAGE_NETIF document of that age, and one that belongs to an established connection is
//!   a RX_STAGE_TCPV4 document too. The same frames show the in-kernel rate limit.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use huatuo_bamai::core::Probe;
use huatuo_bamai::events::EventDocument;
use huatuo_bamai::exposition::MetricSet;
use huatuo_bamai::probes::net_rx_latency::{NetRxLatencyConfig, NetRxLatencyProbe};

use common::netns::Netns;
use common::{bpf_available, collect_until, host_probe_context};

/// How long the slow receivers (and the old frames) are late.
const LATE: Duration = Duration::from_millis(600);
/// Upper slack on a measured age: scheduling of a loaded 2-CPU VM, not the probe.
const SLACK_MS: f64 = 400.0;

/// Thresholds for the tests: usercopy below LATE; netif/tcp high enough that ordinary veth
/// traffic on a loaded machine is never late.
fn settings() -> NetRxLatencyConfig {
    NetRxLatencyConfig {
        enabled: true,
        netif_threshold_ms: 300,
        tcp_threshold_ms: 300,
        usercopy_threshold_ms: 300,
        max_events_per_second: 0,
        ..Default::default()
    }
}

fn data_u64(d: &EventDocument, key: &str) -> u64 {
    d.tracer_data[key].as_u64().unwrap_or(u64::MAX)
}

fn assert_latency(d: &EventDocument, late: Duration) {
    let ms = d.tracer_data["latency_ms"].as_f64().expect("latency_ms");
    let late = late.as_secs_f64() * 1000.0;
    assert!(
        ms >= late && ms < late + SLACK_MS,
        "latency {ms} ms for {late} ms late: {:#}",
        d.tracer_data
    );
}

/// Two namespaces joined by a veth pair: the client's end `a` and the server's end `b`.
struct Link {
    client: Netns,
    server: Netns,
}

impl Link {
    fn create(
        tag: &str,
        client_v4: &str,
        server_v4: &str,
        client_v6: &str,
        server_v6: &str,
    ) -> Self {
        let client = Netns::create(&format!("{tag}c"));
        let server = Netns::create(&format!("{tag}s"));
        let pid = std::process::id();
        let a = format!("{tag}a{pid}");
        let b = format!("{tag}b{pid}");
        client.run(
            "ip",
            &[
                "link",
                "add",
                &a,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &server.name,
            ],
        );
        for (ns, dev, v4, v6) in [
            (&client, &a, client_v4, client_v6),
            (&server, &b, server_v4, server_v6),
        ] {
            ns.run("ip", &["addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.run(
                "ip",
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    dev,
                    "nodad",
                ],
            );
            ns.run("ip", &["link", "set", dev, "up"]);
        }
        Self { client, server }
    }
}

/// A receiver on `listener` that, once the client's data is sent, sleeps `delay` and then reads
/// it on a thread named `name`; returns the client's port.
fn exchange(
    listener: TcpListener,
    connect: impl FnOnce() -> TcpStream + Send + 'static,
    client_ns: Option<&Netns>,
    name: &str,
    delay: Duration,
) -> u16 {
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let server = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            sent_rx.recv().expect("client sent");
            std::thread::sleep(delay);
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).expect("read");
            assert_eq!(&buf[..n], b"late hello");
        })
        .expect("server thread");
    let client = move || {
        let mut stream = connect();
        stream.write_all(b"late hello").expect("write");
        // The segment is delivered (and stamped) before the receiver starts its sleep.
        std::thread::sleep(Duration::from_millis(50));
        let port = stream.local_addr().expect("local").port();
        sent_tx.send(()).expect("signal");
        (stream, port)
    };
    let (stream, port) = match client_ns {
        Some(ns) => ns.in_thread(client),
        None => client(),
    };
    server.join().expect("server");
    drop(stream);
    port
}

fn usercopy_documents(docs: &[EventDocument], sport: u16, dport: u16) -> Vec<&EventDocument> {
    docs.iter()
        .filter(|d| {
            d.tracer_name == "net_rx_latency"
                && d.tracer_data["latency_stage"] == "RX_STAGE_USERCOPY"
                && data_u64(d, "tcp_sport") == u64::from(sport)
                && data_u64(d, "tcp_dport") == u64::from(dport)
        })
        .collect()
}

fn counter(set: &MetricSet, name: &str, label: (&str, &str)) -> f64 {
    set.families
        .iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.samples.iter())
        .filter(|s| s.labels.iter().any(|(k, v)| *k == label.0 && v == label.1))
        .map(|s| s.value)
        .sum()
}

#[test]
fn a_receiver_that_sleeps_before_recv_is_a_usercopy_document() {
    if !bpf_available("a_receiver_that_sleeps_before_recv_is_a_usercopy_document") {
        return;
    }
    let link = Link::create("nru", "10.78.1.1", "10.78.1.2", "fd78:1::1", "fd78:1::2");
    let inode = link.server.inode();
    let ctx = host_probe_context();
    let mut probe = NetRxLatencyProbe::start(&settings(), &ctx).expect("attach net_rx_latency");
    let mut runs = Vec::new();
    for (name, server, delay, port) in [
        ("rxlat-slow4", "10.78.1.2", LATE, 18101u16),
        ("rxlat-quick4", "10.78.1.2", Duration::ZERO, 18102),
        ("rxlat-slow6", "fd78:1::2", LATE, 18103),
    ] {
        let addr = SocketAddr::new(server.parse::<IpAddr>().unwrap(), port);
        let listener = link
            .server
            .in_thread(move || TcpListener::bind(addr).expect("listen"));
        let connect = move || TcpStream::connect(addr).expect("connect");
        let client_port = exchange(listener, connect, Some(&link.client), name, delay);
        runs.push((name, server, port, client_port));
    }

    let (slow4, quick4, slow6) = (runs[0], runs[1], runs[2]);
    let (documents, set) = collect_until(&mut probe, &ctx, Duration::from_secs(5), |docs| {
        !usercopy_documents(docs, slow4.3, slow4.2).is_empty()
            && !usercopy_documents(docs, slow6.3, slow6.2).is_empty()
    });
    for (name, server, port, client_port) in [slow4, slow6] {
        let ours = usercopy_documents(&documents, client_port, port);
        assert_eq!(ours.len(), 1, "{name}: {ours:#?}");
        let d = ours[0];
        common::upstream::assert_upstream_shape(d);
        let data = &d.tracer_data;
        let client = if server.contains(':') {
            "fd78:1::1"
        } else {
            "10.78.1.1"
        };
        assert_eq!(data["tcp_saddr"], client, "{data:#}");
        assert_eq!(data["tcp_daddr"], server, "{data:#}");
        assert_eq!(data_u64(d, "net_namespace_inum"), inode, "{data:#}");
        assert_ne!(data_u64(d, "net_namespace_cookie"), 0, "{data:#}");
        assert_eq!(data["comm"], name, "{data:#}");
        assert_eq!(
            data_u64(d, "pid"),
            u64::from(std::process::id()),
            "{data:#}"
        );
        assert_eq!(data["tcp_state"], "ESTABLISHED", "{data:#}");
        assert_eq!(data_u64(d, "latency_threshold_ms"), 300);
        assert_eq!(
            data_u64(d, "packet_len_bytes"),
            10,
            "the 10 bytes sent: {data:#}"
        );
        assert_latency(d, LATE + Duration::from_millis(50));
        assert!(d.event_time().is_ok(), "{d:#?}");
    }
    assert!(
        usercopy_documents(&documents, quick4.3, quick4.2).is_empty(),
        "a receiver that reads at once is not late: {documents:#?}"
    );
    let counted = counter(
        &set,
        "huatuo_bamai_net_rx_latency_total",
        ("stage", "usercopy"),
    );
    assert!(counted >= 2.0, "usercopy counter {counted}");
}

/// A slow receiver: accepts one connection on `addr`, waits until data is queued, sleeps
/// `LATE` and reads it.
const SLOW_RECEIVER: &str = "import select, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
c, _ = s.accept(); select.select([c], [], [])
time.sleep(float(sys.argv[3])); c.recv(64); c.close()
";

#[test]
fn a_slow_receiver_in_a_container_is_attributed_to_it() {
    if !bpf_available("a_slow_receiver_in_a_container_is_attributed_to_it") {
        return;
    }
    let link = Link::create("nrc", "10.78.3.1", "10.78.3.2", "fd78:3::1", "fd78:3::2");
    let mut container = common::TestContainer::create().expect("create test cgroup");
    // The container exists before the context scans the cgroups.
    let ctx = host_probe_context();
    let mut probe = NetRxLatencyProbe::start(&settings(), &ctx).expect("attach net_rx_latency");
    let late = format!("{}", LATE.as_secs_f64());
    let pid = container.spawn(std::process::Command::new("ip").args([
        "netns",
        "exec",
        &link.server.name,
        "python3",
        "-c",
        SLOW_RECEIVER,
        "10.78.3.2",
        "18120",
        &late,
    ]));
    let client_port = link.client.in_thread(|| {
        let addr: SocketAddr = "10.78.3.2:18120".parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(addr) {
                Ok(stream) => break stream,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("the receiver never listened: {e}"),
            }
        };
        stream.write_all(b"late hello").expect("write");
        let port = stream.local_addr().unwrap().port();
        // Until the receiver read and closed.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        port
    });
    let (documents, _) = collect_until(&mut probe, &ctx, Duration::from_secs(5), |docs| {
        !usercopy_documents(docs, client_port, 18120).is_empty()
    });
    let ours = usercopy_documents(&documents, client_port, 18120);
    assert_eq!(ours.len(), 1, "{documents:#?}");
    let d = ours[0];
    common::upstream::assert_upstream_shape(d);
    assert_eq!(d.container_id, container.id, "{d:#?}");
    assert_eq!(d.cgroup_id, container.expected_cgroup_id());
    assert_eq!(d.container_type, "normal", "{d:#?}");
    assert_eq!(d.tracer_data["comm"], "python3");
    // ip netns exec execs python3 in place: the spawned pid is the receiver's.
    assert_eq!(data_u64(d, "pid"), u64::from(pid));
    assert_eq!(data_u64(d, "net_namespace_inum"), link.server.inode());
    assert_latency(d, LATE);
    container.kill_processes();
}

#[test]
fn the_host_namespace_is_excluded_unless_configured() {
    if !bpf_available("the_host_namespace_is_excluded_unless_configured") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    // The probe's host namespace: pid 1's, else its own (this test's).
    let host = std::fs::metadata("/proc/1/ns/net")
        .or_else(|_| std::fs::metadata("/proc/self/ns/net"))
        .expect("host netns")
        .ino();
    let default_ctx = host_probe_context();
    let mut excluding = NetRxLatencyProbe::start(&settings(), &default_ctx).expect("attach");
    let including_ctx = host_probe_context();
    let including_settings = NetRxLatencyConfig {
        excluded_host_netns: false,
        ..settings()
    };
    let mut including =
        NetRxLatencyProbe::start(&including_settings, &including_ctx).expect("attach");
    let mut excluded_rx = default_ctx.events.subscribe();

    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().unwrap();
    let client_port = exchange(
        listener,
        move || TcpStream::connect(addr).expect("connect"),
        None,
        "rxlat-host",
        LATE,
    );
    let (documents, _) = collect_until(
        &mut including,
        &including_ctx,
        Duration::from_secs(5),
        |docs| !usercopy_documents(docs, client_port, addr.port()).is_empty(),
    );
    let ours = usercopy_documents(&documents, client_port, addr.port());
    assert_eq!(
        ours.len(),
        1,
        "with excluded_host_netns = false: {documents:#?}"
    );
    assert_eq!(data_u64(ours[0], "net_namespace_inum"), host);
    assert_eq!(ours[0].tracer_data["tcp_saddr"], "127.0.0.1");
    assert_latency(ours[0], LATE + Duration::from_millis(50));

    let mut set = MetricSet::default();
    excluding.collect(&mut set).expect("collect");
    let mut excluded = Vec::new();
    while let Ok(d) = excluded_rx.try_recv() {
        excluded.push(d.as_ref().clone());
    }
    assert!(
        usercopy_documents(&excluded, client_port, addr.port()).is_empty(),
        "the host netns is excluded by default: {excluded:#?}"
    );
}

// --- Old frames: AF_PACKET with SO_TXTIME ---------------------------------------------------

const SO_TXTIME: libc::c_int = 61;
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x78, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x78, 0x0b];

fn ones_complement(data: &[u8], mut sum: u32) -> u16 {
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + TCP (ACK, no payload) frame with correct checksums.
fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, seq: u32, ack: u32) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = ones_complement(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&tcp);
    let sum = ones_complement(&pseudo, 0);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend_from_slice(&MAC_B);
    frame.extend_from_slice(&MAC_A);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut now) }, 0);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// An AF_PACKET socket sending out of one device, with delivery times in one clock.
struct OldFrameSender {
    socket: OwnedFd,
    ifindex: i32,
    clock: libc::clockid_t,
}

impl OldFrameSender {
    fn open(netns: &Netns, device: &str, clock: libc::clockid_t) -> Self {
        let device = std::ffi::CString::new(device).unwrap();
        netns.in_thread(move || {
            // SAFETY: plain syscalls on values owned here; the fd is owned right away.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
                let socket = OwnedFd::from_raw_fd(fd);
                let ifindex = libc::if_nametoindex(device.as_ptr()) as i32;
                assert!(ifindex > 0, "{device:?}");
                let txtime = libc::sock_txtime {
                    clockid: clock,
                    flags: 0,
                };
                let rc = libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    SO_TXTIME,
                    (&txtime as *const libc::sock_txtime).cast(),
                    std::mem::size_of::<libc::sock_txtime>() as u32,
                );
                assert_eq!(rc, 0, "SO_TXTIME: {}", std::io::Error::last_os_error());
                Self {
                    socket,
                    ifindex,
                    clock,
                }
            }
        })
    }

    /// Sends `frame` stamped `age` ago in the socket's clock.
    fn send(&self, frame: &[u8], age: Duration) {
        let stamp = clock_ns(self.clock) - age.as_nanos() as u64;
        // SAFETY: every pointer handed to sendmsg points into locals that outlive the call; the
        // control buffer is sized by CMSG_SPACE for one u64.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = 0x0800u16.to_be();
            addr.sll_ifindex = self.ifindex;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&MAC_B);
            let mut iov = libc::iovec {
                iov_base: frame.as_ptr() as *mut _,
                iov_len: frame.len(),
            };
            let space = libc::CMSG_SPACE(8) as usize;
            let mut control = vec![0u8; space];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = SO_TXTIME; // SCM_TXTIME
            (*cmsg).cmsg_len = libc::CMSG_LEN(8) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u64>(), stamp);
            let sent = libc::sendmsg(self.socket.as_raw_fd(), &msg, 0);
            assert_eq!(
                sent,
                frame.len() as isize,
                "sendmsg: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// One namespace with a veth pair `a` (10.78.2.1) — `b` (10.78.2.2): frames sent out of `a`
/// arrive on `b` without leaving the namespace. `b` accepts packets from a local source address
/// (as a segment of a connection between two local addresses has).
fn same_namespace_pair(tag: &str) -> (Netns, String, String) {
    let netns = Netns::create(tag);
    let pid = std::process::id();
    let (a, b) = (format!("{tag}a{pid}"), format!("{tag}b{pid}"));
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    netns.run(
        "ip",
        &[
            "link",
            "add",
            &a,
            "address",
            &mac(MAC_A),
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "address",
            &mac(MAC_B),
        ],
    );
    netns.run("ip", &["addr", "add", "10.78.2.1/24", "dev", &a]);
    netns.run("ip", &["addr", "add", "10.78.2.2/24", "dev", &b]);
    for dev in [&a, &b] {
        netns.run("ip", &["link", "set", dev, "up"]);
    }
    for key in ["all", b.as_str()] {
        netns.run(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{key}.accept_local=1")],
        );
        netns.run(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
        );
    }
    (netns, a, b)
}

fn stage_documents<'a>(
    docs: &'a [EventDocument],
    stage: &str,
    sport: u16,
) -> Vec<&'a EventDocument> {
    docs.iter()
        .filter(|d| {
            d.tracer_data["latency_stage"] == stage && data_u64(d, "tcp_sport") == u64::from(sport)
        })
        .collect()
}

#[test]
fn old_frames_are_netif_documents_in_every_clock_and_tcp_documents_on_a_connection() {
    if !bpf_available(
        "old_frames_are_netif_documents_in_every_clock_and_tcp_documents_on_a_connection",
    ) {
        return;
    }
    let (netns, a, b) = same_namespace_pair("nrf");
    let inode = netns.inode();
    let ctx = host_probe_context();
    let mut probe = NetRxLatencyProbe::start(&settings(), &ctx).expect("attach net_rx_latency");

    // An established connection 10.78.2.1:<client> -> 10.78.2.2:18110 (over lo).
    let server_addr: SocketAddr = "10.78.2.2:18110".parse().unwrap();
    let (listener, client) = netns.in_thread(move || {
        let listener = TcpListener::bind(server_addr).expect("listen");
        let client = std::net::TcpStream::connect(server_addr).expect("connect");
        (listener, client)
    });
    let (_accepted, _) = listener.accept().expect("accept");
    let client_port = client.local_addr().unwrap().port();
    // Connecting to a local address takes it as the source too.
    let IpAddr::V4(client_ip) = client.local_addr().unwrap().ip() else {
        panic!("an IPv4 connection");
    };

    let clocks = [
        (libc::CLOCK_REALTIME, 40001u16),
        (libc::CLOCK_MONOTONIC, 40002),
        (libc::CLOCK_TAI, 40003),
    ];
    for (clock, sport) in clocks {
        let sender = OldFrameSender::open(&netns, &a, clock);
        let frame = tcp_frame(
            [10, 78, 2, 1],
            [10, 78, 2, 2],
            sport,
            9,
            u32::from(sport),
            7,
        );
        sender.send(&frame, LATE);
    }
    // A segment of the connection: TCP processes it for the established socket (tcp_probe);
    // only a realtime stamp survives ip_local_deliver, which restamps delivery times.
    let realtime = OldFrameSender::open(&netns, &a, libc::CLOCK_REALTIME);
    realtime.send(
        &tcp_frame(
            client_ip.octets(),
            [10, 78, 2, 2],
            client_port,
            18110,
            12345,
            67890,
        ),
        LATE,
    );

    let (documents, set) = collect_until(&mut probe, &ctx, Duration::from_secs(5), |docs| {
        clocks
            .iter()
            .all(|(_, sport)| !stage_documents(docs, "RX_STAGE_NETIF", *sport).is_empty())
            && !stage_documents(docs, "RX_STAGE_TCPV4", client_port).is_empty()
    });
    for (clock, sport) in clocks {
        let ours = stage_documents(&documents, "RX_STAGE_NETIF", sport);
        assert_eq!(ours.len(), 1, "clock {clock}: {documents:#?}");
        let d = ours[0];
        common::upstream::assert_upstream_shape(d);
        let data = &d.tracer_data;
        assert_latency(d, LATE);
        assert_eq!(data["netdev_name"], b.as_str(), "{data:#}");
        assert_eq!(data_u64(d, "net_namespace_inum"), inode, "{data:#}");
        assert_eq!(data["tcp_saddr"], "10.78.2.1");
        assert_eq!(data["tcp_daddr"], "10.78.2.2");
        assert_eq!(data_u64(d, "tcp_dport"), 9);
        assert_eq!(data_u64(d, "tcp_seq"), u64::from(sport));
        assert_eq!(data_u64(d, "tcp_ack_seq"), 7);
        assert_eq!(
            data_u64(d, "packet_len_bytes"),
            40,
            "IP + TCP headers: {data:#}"
        );
        // No socket yet at netif, and softirq context: upstream's placeholders.
        assert_eq!(data["tcp_state"], "unknown");
        assert_eq!((data["comm"].as_str(), data_u64(d, "pid")), (Some("-"), 0));
        assert_eq!(data_u64(d, "latency_threshold_ms"), 300);
    }
    let tcp = stage_documents(&documents, "RX_STAGE_TCPV4", client_port);
    assert_eq!(tcp.len(), 1, "{documents:#?}");
    let d = tcp[0];
    common::upstream::assert_upstream_shape(d);
    assert_latency(d, LATE);
    assert_eq!(
        d.tracer_data["tcp_state"], "ESTABLISHED",
        "{:#}",
        d.tracer_data
    );
    assert_eq!(data_u64(d, "tcp_dport"), 18110);
    assert_eq!(
        (data_u64(d, "tcp_seq"), data_u64(d, "tcp_ack_seq")),
        (12345, 67890)
    );
    assert_eq!(data_u64(d, "net_namespace_inum"), inode);
    assert!(
        counter(
            &set,
            "huatuo_bamai_net_rx_latency_total",
            ("stage", "netif")
        ) >= 4.0
    );
    assert!(counter(&set, "huatuo_bamai_net_rx_latency_total", ("stage", "tcp")) >= 1.0);
    drop(client);
}

#[test]
fn the_kernel_queues_at_most_max_events_per_second() {
    if !bpf_available("the_kernel_queues_at_most_max_events_per_second") {
        return;
    }
    let (netns, a, _b) = same_namespace_pair("nrr");
    let ctx = host_probe_context();
    let limited = NetRxLatencyConfig {
        max_events_per_second: 3,
        ..settings()
    };
    let mut probe = NetRxLatencyProbe::start(&limited, &ctx).expect("attach net_rx_latency");
    let sender = OldFrameSender::open(&netns, &a, libc::CLOCK_MONOTONIC);
    const FRAMES: u16 = 30;
    for i in 0..FRAMES {
        sender.send(
            &tcp_frame([10, 78, 2, 1], [10, 78, 2, 2], 41000 + i, 9, 1, 1),
            LATE,
        );
    }
    let ours =
        |d: &EventDocument| (41000..41000 + u64::from(FRAMES)).contains(&data_u64(d, "tcp_sport"));
    let (documents, set) = collect_until(&mut probe, &ctx, Duration::from_secs(2), |_| false);
    let stored = documents.iter().filter(|d| ours(d)).count();
    // Sending takes milliseconds: one one-second window, two if it straddles a boundary.
    assert!((1..=6).contains(&stored), "{stored} stored");
    let counted = counter(
        &set,
        "huatuo_bamai_net_rx_latency_total",
        ("stage", "netif"),
    );
    assert!(
        counted >= f64::from(FRAMES),
        "every late frame is counted: {counted}"
    );
    let suppressed: f64 = set
        .families
        .iter()
        .filter(|f| f.name == "huatuo_bamai_net_rx_latency_suppressed_total")
        .flat_map(|f| f.samples.iter())
        .map(|s| s.value)
        .sum();
    assert!(
        suppressed >= f64::from(FRAMES) - 6.0,
        "{suppressed} suppressed of {FRAMES}"
    );
}

#[test]
fn every_stage_runs_for_each_received_skb_at_a_small_cost() {
    if !bpf_available("every_stage_runs_for_each_received_skb_at_a_small_cost") {
        return;
    }
    const BYTES: usize = 64 << 20;
    let _stats = huatuo_bamai::ebpf::BpfStatsGuard::enable().expect("bpf_stats");
    let netns = Netns::create("nrp");
    let ctx = host_probe_context();
    let mut probe = NetRxLatencyProbe::start(&NetRxLatencyConfig::default(), &ctx).expect("attach");
    netns.in_thread(|| {
        let listener = TcpListener::bind("127.0.0.1:18130").expect("listen");
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0;
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        });
        let mut client = TcpStream::connect("127.0.0.1:18130").expect("connect");
        client.write_all(&vec![1u8; BYTES]).expect("write");
        drop(client);
        assert_eq!(reader.join().expect("reader"), BYTES);
    });
    let costs = probe.programs().expect("BPF programs").costs();
    eprintln!("{costs:#?}");
    // lo carries at most 64 KiB per skb; TCP merges segments queued to a busy socket's backlog
    // (one tcp_probe for several), so half of BYTES / 64 KiB is a safe floor for every stage.
    let least = (BYTES >> 17) as u64;
    for program in [
        "on_netif_receive_skb",
        "on_tcp_probe",
        "on_skb_copy_datagram_iovec",
    ] {
        let cost = costs.iter().find(|c| c.program == program).expect(program);
        assert!(
            cost.run_count >= least,
            "{program} ran {} times",
            cost.run_count
        );
        let mean = cost.run_time / u32::try_from(cost.run_count).unwrap_or(u32::MAX);
        // A young packet leaves after the stamp read; 5 µs is a 2-CPU VM's noise bound.
        assert!(
            mean < Duration::from_micros(5),
            "{program}: {mean:?} per run"
        );
    }
}
