//! An rtnetlink socket of the link probes (netdev_events, lacp): `NETLINK_ROUTE`, non-blocking,
//! subscribed to `RTMGRP_LINK` in the agent's network namespace, plus `RTM_GETLINK` dumps on the
//! same socket (so dump replies and notifications arrive in the kernel's order); the messages
//! are decoded by [`message`].

pub mod message;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use message::dump_request;

/// `RTMGRP_LINK`: link notifications.
const RTMGRP_LINK: u32 = 1;
/// Room for notification bursts (many devices changing at once) before the kernel drops
/// messages with `ENOBUFS`.
const RCVBUF_BYTES: libc::c_int = 4 << 20;
/// Largest datagram: dump skbs are at most 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;

/// One `recv` of [`LinkSocket::recv`].
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A datagram of this many bytes is in the buffer.
    Datagram(usize),
    /// A datagram larger than the buffer was cut (its messages are lost).
    Truncated(usize),
    /// The kernel dropped notifications (`ENOBUFS`): the socket's queue overflowed.
    Overrun,
    /// Nothing is waiting.
    Empty,
}

pub struct LinkSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

fn os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl LinkSocket {
    /// Opens the socket and subscribes to link notifications.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the returned descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SO_RCVBUFFORCE (root) goes past net.core.rmem_max; without it SO_RCVBUF caps there.
        for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: the value outlives the call and its size is passed.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&RCVBUF_BYTES as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 lets the kernel pick the port id.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        // SAFETY: `addr` outlives the call and its size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os_error("bind(RTMGRP_LINK)"));
        }
        Ok(Self {
            fd,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// Asks for a dump of every link; the replies (ending in `NLMSG_DONE` with `seq`) arrive
    /// among the notifications.
    pub fn request_dump(&self, seq: u32) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let req = dump_request(seq);
        // SAFETY: `req` and `kernel` outlive the call and their sizes are passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(os_error("send RTM_GETLINK"));
        }
        Ok(())
    }

    /// Receives one datagram without blocking; its bytes are [`LinkSocket::datagram`].
    pub fn recv(&mut self) -> io::Result<Received> {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes. MSG_TRUNC makes netlink return the
            // datagram's real length, so a truncation is detected instead of silently cut.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n >= 0 {
                let n = n as usize;
                return Ok(if n > self.buf.len() {
                    Received::Truncated(n)
                } else {
                    Received::Datagram(n)
                });
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(Received::Empty),
                Some(libc::ENOBUFS) => return Ok(Received::Overrun),
                _ => return Err(io::Error::new(err.kind(), format!("recv rtnetlink: {err}"))),
            }
        }
    }

    /// The bytes of the last [`Received::Datagram`] of `len` bytes.
    pub fn datagram(&self, len: usize) -> &[u8] {
        &self.buf[..len.min(self.buf.len())]
    }

    /// Waits until a datagram is readable or `timeout` passed; true when readable.
    pub fn wait_readable(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0
    }
}
