//! The rtnetlink socket of the qdisc probe: an `RTM_GETQDISC` dump over a `NETLINK_ROUTE` socket
//! ([`dump_qdiscs`]), decoded by [`DumpParser`], and interface names by index.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::dump::{dump_request, Dump, DumpParser};

/// Largest reply datagram: the kernel sizes dump skbs at most 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// A `NETLINK_ROUTE` socket in the calling thread's network namespace.
pub fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one dump request over a new socket and decodes the reply. `buf` is the receive buffer
/// (kept by the caller between ticks).
fn dump_once(seq: u32, buf: &mut Vec<u8>) -> Result<(Dump, bool), String> {
    let fd = open_socket().map_err(|e| format!("socket(AF_NETLINK, NETLINK_ROUTE): {e}"))?;
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: `timeout` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_os_error("setsockopt(SO_RCVTIMEO)"));
    }
    // SAFETY: zeroed sockaddr_nl is valid; nl_pid 0 addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    let req = dump_request(seq);
    // SAFETY: `req` and `kernel` outlive the call and their sizes are passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(last_os_error("send RTM_GETQDISC"));
    }
    buf.resize(RECV_BUFFER, 0);
    let mut parser = DumpParser::new(seq);
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes. MSG_TRUNC makes netlink return the
        // datagram's real length, so a truncation is detected instead of silently cut.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    return Err(format!(
                        "no complete reply to RTM_GETQDISC within {RECV_TIMEOUT:?}"
                    ))
                }
                _ => return Err(format!("recv RTM_GETQDISC reply: {err}")),
            }
        }
        let n = n as usize;
        if n == 0 {
            return Err("netlink socket closed before NLMSG_DONE".to_string());
        }
        if n > buf.len() {
            return Err(format!(
                "reply datagram of {n} bytes exceeds the {} byte buffer",
                buf.len()
            ));
        }
        if parser.feed(&buf[..n])? {
            break;
        }
    }
    let interrupted = parser.interrupted();
    Ok((parser.finish()?, interrupted))
}

/// Dumps every qdisc of the current network namespace. A dump the kernel flags inconsistent is
/// retried (3 attempts in all).
pub fn dump_qdiscs(seq: &mut u32, buf: &mut Vec<u8>) -> Result<Dump, String> {
    for _ in 0..3 {
        *seq = seq.wrapping_add(1);
        let (dump, interrupted) = dump_once(*seq, buf)?;
        if !interrupted {
            return Ok(dump);
        }
    }
    Err("RTM_GETQDISC dump interrupted (NLM_F_DUMP_INTR) 3 times in a row".to_string())
}

/// The name of interface `ifindex` in the current network namespace; `None` when it is gone.
pub fn ifname(ifindex: i32) -> Option<String> {
    let index = u32::try_from(ifindex).ok().filter(|&i| i != 0)?;
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` holds IF_NAMESIZE bytes, as if_indextoname(3) requires.
    let ret = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if ret.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
