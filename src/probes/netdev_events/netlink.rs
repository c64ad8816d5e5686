//! `ethtool -i` over `SIOCETHTOOL`: the driver of a link (the rtnetlink socket is shared, in
//! `probes::common::rtnetlink`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::tracker::DriverInfo;
use crate::probes::common::event_ring::c_string;

/// `SIOCETHTOOL` / `ETHTOOL_GDRVINFO`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;
/// `struct ethtool_drvinfo`: cmd u32, driver[32], version[32], fw_version[32], bus_info[32],
/// erom_version[32], reserved2[12], five u32 counts.
const DRVINFO_LEN: usize = 196;

/// `ethtool -i <ifname>`: driver, version and firmware version. `None` when the device has no
/// such information (e.g. `lo`) or is gone.
pub fn driver_info(ifname: &str) -> Option<DriverInfo> {
    if ifname.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: plain socket(2) call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = [0u8; DRVINFO_LEN];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    // SAFETY: zeroed ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = info.as_mut_ptr().cast();
    // SAFETY: `req` names the device and points at `info`, which outlives the call and is as
    // large as the kernel's struct ethtool_drvinfo.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if rc < 0 {
        return None;
    }
    Some(DriverInfo {
        driver: c_string(&info[4..36]),
        version: c_string(&info[36..68]),
        firmware_version: c_string(&info[68..100]),
    })
}
