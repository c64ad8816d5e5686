//! What the kernel side needs from user space: RX software timestamps turned on, and the offset
//! between CLOCK_TAI (which BPF can read) and CLOCK_REALTIME (the clock of those timestamps).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SO_TIMESTAMPING` (`SO_TIMESTAMPING_OLD` on x86_64; the libc crate does not export it).
const SO_TIMESTAMPING: libc::c_int = 37;

/// A UDP socket with SOF_TIMESTAMPING_RX_SOFTWARE set: while one such socket exists the kernel
/// stamps every received packet (`net_enable_timestamp`, system wide); closing it undoes that.
#[derive(Debug)]
pub struct RxTimestamps {
    socket: OwnedFd,
}

impl RxTimestamps {
    pub fn enable() -> Result<Self, String> {
        // SAFETY: socket() takes no pointers; the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!(
                "cannot open the RX timestamp socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: fd is a fresh socket nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let flags = libc::SOF_TIMESTAMPING_RX_SOFTWARE as libc::c_int;
        // SAFETY: the option value is a c_int that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_TIMESTAMPING,
                (&flags as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!(
                "SO_TIMESTAMPING (SOF_TIMESTAMPING_RX_SOFTWARE) refused: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self { socket })
    }

    pub fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }
}

fn clock_ns(clock: libc::clockid_t) -> Result<i128, String> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return Err(format!(
            "clock_gettime({clock}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec))
}

/// CLOCK_TAI − CLOCK_REALTIME in ns: a whole number of seconds (0 until something such as
/// chrony sets the kernel's TAI offset), so the two readings are rounded to the second.
pub fn tai_offset_ns() -> Result<i64, String> {
    let tai = clock_ns(libc::CLOCK_TAI)?;
    let real = clock_ns(libc::CLOCK_REALTIME)?;
    Ok(round_to_second(tai - real))
}

/// `delta` rounded to the nearest whole second, in ns.
pub fn round_to_second(delta: i128) -> i64 {
    let seconds = (delta as f64 / 1e9).round() as i64;
    seconds.saturating_mul(1_000_000_000)
}
