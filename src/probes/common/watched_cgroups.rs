//! Per-container attribution in the kernel: a BPF hash of the container cgroup ids to count for
//! (filled from discovery), kept in sync with the live container set. Cgroups outside it cost
//! the kernel one lookup and no memory.

use std::collections::HashSet;
use std::sync::Arc;

use crate::containers::{Container, ContainerSet, ContainerWatch, MetricScope};
use crate::ebpf::{BpfError, BpfProgramSet};

pub struct WatchedCgroups {
    containers: ContainerWatch,
    /// The `u64 -> u8` hash in the probe's BPF object.
    map: &'static str,
    /// Which id of a container the kernel sees (its cgroup id, cpu, memory or block cgroup id).
    id_of: fn(&Container) -> u64,
    /// The containers the probe exports series for (the others cost the kernel nothing).
    scope: MetricScope,
    /// Ids currently in the map.
    watched: HashSet<u64>,
    switch: Option<&'static str>,
}

impl WatchedCgroups {
    pub fn new(
        containers: ContainerWatch,
        map: &'static str,
        id_of: fn(&Container) -> u64,
        scope: MetricScope,
    ) -> Self {
        Self {
            containers,
            map,
            id_of,
            scope,
            watched: HashSet::new(),
            switch: None,
        }
    }

    /// A one-entry `u32` array the kernel checks before any per-container work: set to the
    /// number of watched ids, so a host without containers pays nothing on hot paths.
    pub fn with_switch(mut self, map: &'static str) -> Self {
        self.switch = Some(map);
        self
    }

    /// Updates the kernel map if the container set changed; returns the current set.
    pub fn sync(&mut self, programs: &mut BpfProgramSet) -> Result<Arc<ContainerSet>, BpfError> {
        let containers = self.containers.borrow().clone();
        let wanted: HashSet<u64> = containers
            .for_metrics(self.scope)
            .map(|c| (self.id_of)(c))
            .collect();
        if wanted != self.watched {
            programs.sync_key_set(self.map, &wanted)?;
            if let Some(switch) = self.switch {
                programs.set_u32(switch, 0, wanted.len() as u32)?;
            }
            self.watched = wanted;
        }
        Ok(containers)
    }

    /// The containers of `set` this probe exports, each with the id the kernel counts it by.
    pub fn exported<'a>(
        &self,
        set: &'a ContainerSet,
    ) -> impl Iterator<Item = (&'a Arc<Container>, u64)> + 'a {
        let id_of = self.id_of;
        set.for_metrics(self.scope).map(move |c| (c, id_of(c)))
    }

    /// The ids now watched (state of other keys in per-cgroup maps is stale).
    pub fn ids(&self) -> &HashSet<u64> {
        &self.watched
    }
}
