//! Reading and writing the maps of a program set: per-CPU counters, log2 histograms, switches,
//! key sets and per-container sums.

use super::BpfProgramSet;
use crate::ebpf::{histogram, BpfError};

/// The error of a failed read or write of `map`.
fn map_error(
    probe: &'static str,
    map: &'static str,
) -> impl Fn(aya::maps::MapError) -> BpfError + Copy {
    move |e| BpfError::MapRead {
        probe,
        map,
        reason: e.to_string(),
    }
}

impl BpfProgramSet {
    fn map_data(&self, map: &'static str) -> Result<&aya::maps::Map, BpfError> {
        let probe = self.probe;
        self.bpf.map(map).ok_or(BpfError::MissingMap { probe, map })
    }

    fn map_data_mut(&mut self, map: &'static str) -> Result<&mut aya::maps::Map, BpfError> {
        let probe = self.probe;
        self.bpf
            .map_mut(map)
            .ok_or(BpfError::MissingMap { probe, map })
    }

    /// Slot `index` of the per-CPU `u64` array `map` summed over CPUs (BPF counters are per-CPU
    /// so the hot path needs no atomics).
    pub fn per_cpu_sum(&self, map: &'static str, index: u32) -> Result<u64, BpfError> {
        Ok(self
            .per_cpu_u64(map, index)?
            .iter()
            .fold(0u64, |a, v| a.wrapping_add(*v)))
    }

    /// Per-CPU values of `index` in the `u64` per-CPU array `map` (one entry per possible CPU).
    pub fn per_cpu_u64(&self, map: &'static str, index: u32) -> Result<Vec<u64>, BpfError> {
        let read_err = map_error(self.probe, map);
        let data = self.map_data(map)?;
        let array =
            aya::maps::PerCpuArray::<&aya::maps::MapData, u64>::try_from(data).map_err(read_err)?;
        let values = array.get(&index, 0).map_err(read_err)?;
        Ok(values.iter().copied().collect())
    }

    /// A kernel log2 histogram stored in the per-CPU `u64` array `map` from index `base`:
    /// LOG2_SLOTS slot counters followed by the sum of values in ns.
    pub fn log2_histogram(
        &self,
        map: &'static str,
        base: u32,
    ) -> Result<histogram::Log2Histogram, BpfError> {
        let total = |index: u32| self.per_cpu_sum(map, index);
        let mut slots = Vec::with_capacity(histogram::LOG2_SLOTS);
        for slot in 0..histogram::LOG2_SLOTS as u32 {
            slots.push(total(base + slot)?);
        }
        let sum_ns = total(base + histogram::LOG2_SLOTS as u32)?;
        Ok(histogram::Log2Histogram { slots, sum_ns })
    }

    /// Writes `value` at `index` of the `u32` array `map` (a switch or knob the programs read).
    pub fn set_u32(&mut self, map: &'static str, index: u32, value: u32) -> Result<(), BpfError> {
        let err = map_error(self.probe, map);
        let data = self.map_data_mut(map)?;
        let mut array =
            aya::maps::Array::<&mut aya::maps::MapData, u32>::try_from(data).map_err(err)?;
        array.set(index, value, 0).map_err(err)
    }

    /// Makes the `u64 -> u8` hash `map` hold exactly `wanted` (e.g. the container cgroup ids a
    /// probe should count per container). Only differences are written.
    pub fn sync_key_set(
        &mut self,
        map: &'static str,
        wanted: &std::collections::HashSet<u64>,
    ) -> Result<(), BpfError> {
        let err = map_error(self.probe, map);
        let data = self.map_data_mut(map)?;
        let mut set =
            aya::maps::HashMap::<&mut aya::maps::MapData, u64, u8>::try_from(data).map_err(err)?;
        let present: std::collections::HashSet<u64> = set.keys().filter_map(Result::ok).collect();
        for stale in present.difference(wanted) {
            let _ = set.remove(stale);
        }
        for new in wanted.difference(&present) {
            set.insert(new, 1, 0).map_err(err)?;
        }
        Ok(())
    }

    /// Sums over CPUs the `[u64; N]` value of every key of the per-CPU hash `map`, and deletes
    /// keys not in `keep` (state of containers that are gone).
    pub fn per_cpu_hash_sums<const N: usize>(
        &mut self,
        map: &'static str,
        keep: &std::collections::HashSet<u64>,
    ) -> Result<std::collections::HashMap<u64, [u64; N]>, BpfError> {
        let err = map_error(self.probe, map);
        let data = self.map_data_mut(map)?;
        let mut hash =
            aya::maps::PerCpuHashMap::<&mut aya::maps::MapData, u64, [u64; N]>::try_from(data)
                .map_err(err)?;
        let mut sums = std::collections::HashMap::new();
        let mut stale = Vec::new();
        for entry in hash.iter() {
            let (key, per_cpu) = entry.map_err(err)?;
            if !keep.contains(&key) {
                stale.push(key);
                continue;
            }
            let mut total = [0u64; N];
            for values in per_cpu.iter() {
                for (slot, value) in total.iter_mut().zip(values.iter()) {
                    *slot = slot.wrapping_add(*value);
                }
            }
            sums.insert(key, total);
        }
        for key in stale {
            let _ = hash.remove(&key);
        }
        Ok(sums)
    }

    /// Every entry of the (LRU) hash `map` with plain-data keys and values; entries that
    /// vanish during the walk are skipped.
    pub fn hash_entries<K: aya::Pod, V: aya::Pod>(
        &self,
        map: &'static str,
    ) -> Result<Vec<(K, V)>, BpfError> {
        let err = map_error(self.probe, map);
        let data = self.map_data(map)?;
        let hash = aya::maps::HashMap::<&aya::maps::MapData, K, V>::try_from(data).map_err(err)?;
        Ok(hash.iter().filter_map(Result::ok).collect())
    }
}
