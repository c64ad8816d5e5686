//! The kernel → user path of the event probes: a BPF ring buffer drained on every tick (never
//! blocking), records decoded from bytes without `unsafe`, the kernel's boot-time stamp of an
//! event turned into wall-clock time, and NUL-padded `comm` arrays turned into strings.

use std::time::{Duration, SystemTime};

use aya::maps::{MapData, RingBuf};

use crate::ebpf::{BpfError, BpfProgramSet};

/// Records of an event probe that never became documents, by probe and reason (`ring_full`:
/// the kernel found no room in the ring; `undecodable`: a record its decoder rejected).
pub const RING_LOST_TOTAL: &str = "huatuo_bamai_event_ring_lost_total";

/// A `BPF_MAP_TYPE_RINGBUF` taken out of a loaded object, so the probe owns its reader.
pub struct EventRing {
    ring: RingBuf<MapData>,
    /// Records too short for their decoder (a C/Rust layout mismatch), for logging.
    undecodable_total: u64,
    /// What `account` has already logged.
    undecodable_logged: u64,
    lost_seen: u64,
}

impl EventRing {
    /// Takes ring buffer `map` out of `programs` (after attaching; the programs keep writing to
    /// it).
    pub fn take(
        probe: &'static str,
        programs: &mut BpfProgramSet,
        map: &'static str,
    ) -> Result<Self, BpfError> {
        let data = programs
            .ebpf_mut()
            .take_map(map)
            .ok_or(BpfError::MissingMap { probe, map })?;
        let ring = RingBuf::try_from(data).map_err(|e| BpfError::MapRead {
            probe,
            map,
            reason: e.to_string(),
        })?;
        Ok(Self {
            ring,
            undecodable_total: 0,
            undecodable_logged: 0,
            lost_seen: 0,
        })
    }

    /// Decodes every record waiting, oldest first, at most `max` (the rest wait for the next
    /// call). A record `decode` rejects is consumed and counted (see [`EventRing::account`]).
    pub fn drain<T>(&mut self, max: usize, decode: impl Fn(&[u8]) -> Option<T>) -> Vec<T> {
        let mut records = Vec::new();
        while records.len() < max {
            let Some(item) = self.ring.next() else {
                break;
            };
            match decode(&item) {
                Some(record) => records.push(record),
                None => self.undecodable_total += 1,
            }
        }
        records
    }

    /// Logs what was lost since the last call: records the kernel could not queue (`lost_total`,
    /// the BPF side's cumulative ring-full counter) and records that did not decode. Returns
    /// how many of both are new.
    pub fn account(&mut self, probe: &'static str, lost_total: u64) -> u64 {
        let lost = lost_total.saturating_sub(self.lost_seen);
        self.lost_seen = self.lost_seen.max(lost_total);
        if lost > 0 {
            tracing::warn!(probe, lost, "events not reported: the ring buffer was full");
            metrics::counter!(RING_LOST_TOTAL, "probe" => probe, "reason" => "ring_full")
                .increment(lost);
        }
        let undecodable = self.undecodable_total - self.undecodable_logged;
        self.undecodable_logged = self.undecodable_total;
        if undecodable > 0 {
            metrics::counter!(RING_LOST_TOTAL, "probe" => probe, "reason" => "undecodable")
                .increment(undecodable);
            tracing::error!(
                probe,
                records = undecodable,
                "ring records that do not decode (BPF/user layout mismatch)"
            );
        }
        lost + undecodable
    }

    /// [`EventRing::account`] with `lost_total` read from slot `index` of the per-CPU array
    /// `lost_map`, where the BPF side counts the records it found no room for. Returns how many
    /// records are newly lost.
    pub fn account_losses(
        &mut self,
        probe: &'static str,
        programs: &BpfProgramSet,
        lost_map: &'static str,
        index: u32,
    ) -> Result<u64, BpfError> {
        let lost_total = programs.per_cpu_sum(lost_map, index)?;
        Ok(self.account(probe, lost_total))
    }
}

/// Little-endian `u16` at `offset`.
pub fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

/// Little-endian `u32` at `offset` (BPF records are native-endian; this agent is x86_64 only).
pub fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// Little-endian `u64` at `offset`.
pub fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// A kernel `comm` (`char[16]`, NUL-padded) at `offset`, lossily decoded.
pub fn comm_at(bytes: &[u8], offset: usize) -> Option<String> {
    Some(c_string(bytes.get(offset..offset + 16)?))
}

/// A NUL-terminated (or NUL-padded) kernel string, lossily decoded.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Nanoseconds since boot now (`CLOCK_BOOTTIME`, the clock of `bpf_ktime_get_boot_ns()`).
pub fn boot_ns_now() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    Some(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}

/// Wall-clock time of a kernel event stamped with `bpf_ktime_get_boot_ns()` (suspend-safe);
/// `now` when the stamp is unusable.
pub fn boot_ns_to_system_time(boot_ns: u64) -> SystemTime {
    let now = SystemTime::now();
    let Some(boot_now) = boot_ns_now() else {
        return now;
    };
    let ago = Duration::from_nanos(boot_now.saturating_sub(boot_ns));
    now.checked_sub(ago).unwrap_or(now)
}

/// An event document timestamped with the kernel's event time (`boot_ns`, CLOCK_BOOTTIME as
/// recorded by the BPF program) rather than the moment the ring buffer was drained.
pub fn document_at(
    ctx: &crate::core::probe::ProbeContext,
    tracer: &str,
    container: Option<&crate::containers::Container>,
    cgroup_id: u64,
    data: serde_json::Value,
    boot_ns: u64,
) -> crate::events::EventDocument {
    let mut document = crate::events::EventDocument::new(
        &ctx.hostname,
        &ctx.region,
        tracer,
        container,
        cgroup_id,
        data,
    );
    document.set_event_time(boot_ns_to_system_time(boot_ns));
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_decode_at_offsets_and_reject_short_records() {
        let mut record = vec![0u8; 32];
        record[0..4].copy_from_slice(&7u32.to_le_bytes());
        record[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        record[16..23].copy_from_slice(b"python3");
        assert_eq!(u32_at(&record, 0), Some(7));
        assert_eq!(u64_at(&record, 8), Some(0x1122_3344_5566_7788));
        assert_eq!(comm_at(&record, 16).as_deref(), Some("python3"));
        assert_eq!(u64_at(&record, 28), None);
        assert_eq!(comm_at(&record, 17), None);
        // A full 16-byte comm has no NUL.
        let full = [b'x'; 16];
        assert_eq!(comm_at(&full, 0).unwrap().len(), 16);
    }

    #[test]
    fn boot_stamps_become_wall_clock_times() {
        let now = boot_ns_now().expect("CLOCK_BOOTTIME");
        let event = boot_ns_to_system_time(now.saturating_sub(2_000_000_000));
        let ago = SystemTime::now().duration_since(event).unwrap();
        assert!(
            ago >= Duration::from_millis(1900) && ago < Duration::from_secs(5),
            "{ago:?}"
        );
        // A stamp from the future (or garbage) is clamped to now.
        let future = boot_ns_to_system_time(u64::MAX);
        assert!(SystemTime::now().duration_since(future).unwrap() < Duration::from_secs(1));
    }
}
