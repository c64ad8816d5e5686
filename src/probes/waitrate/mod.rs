//! waitrate (AutoTracing, beyond upstream, which never open-sourced it): per normal container,
//! how long its tasks wait on a run queue per unit of run time, split into waiting behind its
//! own tasks (inner) and behind other cgroups (exter), exported as
//! `huatuo_bamai_cpu_waitrate_container_{wait,inner_wait,exter_wait}_rate` (upstream's old
//! `cpu_stat_container_inner/exter_wait_rate` came from a Didi-kernel cpu.stat field). When a
//! container's rate passes `threshold` (and its own history's mean + `spike_factor` × std), a
//! `waitrate` autotracing document names the contending cgroups ranked by the CPU time they
//! took on its CPUs while it waited. Source: tp_btf sched_wakeup, sched_wakeup_new,
//! sched_switch (see waitrate.bpf.c).

mod rates;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::autotracing::Cooldown;
use crate::containers::{Container, ContainerSet, MetricScope};
use crate::core::probe::{Probe, ProbeContext, ProbeError, Roles};
use crate::ebpf::{self, Attachment, BpfProgramSet, Hook};
use crate::events::{EventDocument, TracerType};
use crate::exposition::MetricSet;
use crate::probes::common::watched_cgroups::WatchedCgroups;

pub use rates::{contention_deltas, rank_contenders, should_capture, CgroupTimes, Rates, Rule};

const NAME: &str = "waitrate";
const TIMES_MAP: &str = "WAIT_CGROUP_TIMES";
const CONTENTION_MAP: &str = "WAIT_CONTENTION";
const ATTACHMENTS: [Attachment; 3] = [
    Attachment {
        program: "on_sched_wakeup",
        hook: Hook::TpBtf("sched_wakeup"),
    },
    Attachment {
        program: "on_sched_wakeup_new",
        hook: Hook::TpBtf("sched_wakeup_new"),
    },
    Attachment {
        program: "on_sched_switch",
        hook: Hook::TpBtf("sched_switch"),
    },
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// AutoTracing waitrate: container run-queue wait per unit of run time (tp_btf sched_wakeup,
/// sched_wakeup_new, sched_switch), inner vs exter; a spike → document naming the contenders.
pub struct WaitrateConfig {
    /// Turn the trigger and its gauges on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Sampling window in ms: rates are computed over it.
    pub interval_ms: u64,
    /// Capture when a container's wait rate (wait ns / run ns in the window) exceeds this.
    pub threshold: f64,
    /// Also require the rate to exceed mean + spike_factor × std of the container's history
    /// (upstream's design: factor by service level); 0 turns this rule off.
    pub spike_factor: f64,
    /// Samples of history kept per container (180 × 10 s = upstream's 30 min).
    pub history_samples: usize,
    /// The spike rule applies once this many samples exist.
    pub min_history_samples: usize,
    /// Windows in which the container ran less than this many ms never fire.
    pub min_run_ms: u64,
    /// Quiet time per container after a capture, in seconds.
    pub cooldown_secs: u64,
    /// Quiet time for every container after any capture, in seconds.
    pub global_cooldown_secs: u64,
    /// At most this many contenders are listed.
    pub max_contenders: usize,
}

impl Default for WaitrateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 10_000,
            threshold: 0.5,
            spike_factor: 3.0,
            history_samples: 180,
            min_history_samples: 30,
            min_run_ms: 100,
            cooldown_secs: 1800,
            global_cooldown_secs: 0,
            max_contenders: 10,
        }
    }
}

crate::probe_settings!(WaitrateConfig, "waitrate", |c: &WaitrateConfig| {
    for (key, value) in [("threshold", c.threshold), ("spike_factor", c.spike_factor)] {
        if !value.is_finite() || value < 0.0 {
            return Err(format!("{key} must be a non-negative number, not {value}"));
        }
    }
    if c.min_history_samples > c.history_samples {
        return Err(format!(
            "min_history_samples ({}) is above history_samples ({})",
            c.min_history_samples, c.history_samples
        ));
    }
    Ok(())
});

impl WaitrateConfig {
    fn rule(&self) -> Rule {
        Rule {
            threshold: self.threshold,
            spike_factor: self.spike_factor,
            min_history: self.min_history_samples,
            min_run_ns: self.min_run_ms * 1_000_000,
        }
    }
}

/// One contender of a `waitrate` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contender {
    /// Empty when the cgroup is not a known container (host services, other cgroups).
    pub container_id: String,
    pub container_hostname: String,
    pub cgroup_id: u64,
    /// CPU time it took on the victim's CPU while the victim waited in the window.
    pub cpu_time_ns: u64,
    /// Its part of the victim's exter wait (0–1).
    pub share: f64,
}

/// `tracer_data` of a `waitrate` document (`curr_waitrate`, `rel_waitrate_thres`: the
/// fields of upstream's Grafana panel).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitrateData {
    pub curr_waitrate: f64,
    pub rel_waitrate_thres: f64,
    pub inner_wait_rate: f64,
    pub exter_wait_rate: f64,
    pub run_ns: u64,
    pub wait_ns: u64,
    pub window_ms: u64,
    pub contenders: Vec<Contender>,
}

pub struct WaitrateProbe {
    programs: BpfProgramSet,
    watched: WatchedCgroups,
    ctx: ProbeContext,
    settings: WaitrateConfig,
    last_times: HashMap<u64, CgroupTimes>,
    last_contention: HashMap<(u64, u64), u64>,
    last_at: Instant,
    history: HashMap<u64, VecDeque<f64>>,
    cooldown: Cooldown<u64>,
    captures_total: u64,
}

/// The id the kernel keys a container by (cpu css cgroup on v1, default cgroup on v2).
fn kernel_id(c: &Container) -> u64 {
    c.cpu_cgroup_id
}

impl Probe for WaitrateProbe {
    const NAME: &'static str = NAME;
    const ROLES: Roles = Roles::EVENTS;
    type Settings = WaitrateConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let by_css = ctx.cgroup.keys_by_css();
        let bpf = ebpf::load(
            NAME,
            crate::bpf_object!("waitrate"),
            &[("key_by_cpu_css", by_css as u32)],
        )?;
        let programs = BpfProgramSet::attach(NAME, bpf, &ATTACHMENTS)?;
        Ok(Self {
            programs,
            watched: WatchedCgroups::new(
                ctx.containers.clone(),
                "WAIT_WATCHED_CGROUPS",
                kernel_id,
                MetricScope::Normal,
            )
            .with_switch("WAIT_WATCHING"),
            ctx: ctx.clone(),
            settings: settings.clone(),
            last_times: HashMap::new(),
            last_contention: HashMap::new(),
            last_at: Instant::now(),
            history: HashMap::new(),
            cooldown: Cooldown::new(
                Duration::from_secs(settings.global_cooldown_secs),
                Duration::from_secs(settings.cooldown_secs),
            ),
            captures_total: 0,
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let containers = self.watched.sync(&mut self.programs)?;
        let times: HashMap<u64, CgroupTimes> = self
            .programs
            .per_cpu_hash_sums::<4>(TIMES_MAP, self.watched.ids())?
            .into_iter()
            .map(|(id, t)| (id, CgroupTimes::from_array(t)))
            .collect();
        let contention: HashMap<(u64, u64), u64> = self
            .programs
            .hash_entries::<[u64; 2], u64>(CONTENTION_MAP)?
            .into_iter()
            .map(|(k, v)| ((k[0], k[1]), v))
            .collect();
        let now = Instant::now();
        let window = now.saturating_duration_since(self.last_at);
        let by_victim = contention_deltas(&contention, &self.last_contention);
        let rule = self.settings.rule();
        let mut captures = Vec::new();
        let names = [
            ("huatuo_bamai_cpu_waitrate_container_wait_rate", "Run-queue wait of a container's tasks per unit of their run time over the last window (1 = waited as long as ran)."),
            ("huatuo_bamai_cpu_waitrate_container_inner_wait_rate", "Run-queue wait of a container's tasks behind its own tasks, per unit of run time, over the last window."),
            ("huatuo_bamai_cpu_waitrate_container_exter_wait_rate", "Run-queue wait of a container's tasks behind other cgroups' tasks, per unit of run time, over the last window."),
        ];
        let mut series = Vec::new();
        for (container, id) in self.watched.exported(&containers) {
            let current = times.get(&id).copied().unwrap_or_default();
            let Some(before) = self.last_times.get(&id) else {
                continue; // First window of this container: no rate yet.
            };
            let delta = current.since(before);
            let rates = Rates::of(&delta);
            series.push((container.labels(), rates));
            let history = self.history.entry(id).or_default();
            let past: Vec<f64> = history.iter().copied().collect();
            if let Some(threshold) = should_capture(&rule, &delta, &past) {
                if self.cooldown.ready(&id, now) {
                    captures.push((container.clone(), id, delta, rates, threshold));
                }
            }
            history.push_back(rates.wait_rate);
            while history.len() > self.settings.history_samples {
                history.pop_front();
            }
        }
        for (i, (name, help)) in names.iter().enumerate() {
            let family = out.gauge(name, help);
            for (labels, rates) in &series {
                let value = [
                    rates.wait_rate,
                    rates.inner_wait_rate,
                    rates.exter_wait_rate,
                ][i];
                family.push(labels.clone(), value);
            }
        }
        for (container, id, delta, rates, threshold) in captures {
            self.cooldown.fired(id, now);
            let contenders = by_victim
                .get(&id)
                .map(|taken| self.contenders(&containers, taken, delta.exter))
                .unwrap_or_default();
            let data = WaitrateData {
                curr_waitrate: rates.wait_rate,
                rel_waitrate_thres: threshold,
                inner_wait_rate: rates.inner_wait_rate,
                exter_wait_rate: rates.exter_wait_rate,
                run_ns: delta.run,
                wait_ns: delta.wait,
                window_ms: window.as_millis() as u64,
                contenders,
            };
            let mut document = EventDocument::new(
                &self.ctx.hostname,
                &self.ctx.region,
                NAME,
                Some(&container),
                container.cgroup_id,
                serde_json::to_value(&data).unwrap_or_default(),
            );
            document.tracer_type = TracerType::Autotracing;
            self.captures_total += 1;
            self.ctx.events.publish(document);
        }
        self.history.retain(|id, _| times.contains_key(id));
        self.last_times = times;
        self.last_contention = contention;
        self.last_at = now;
        out.counter(
            "huatuo_bamai_waitrate_captures_total",
            "waitrate AutoTracing captures (documents written); cumulative.",
        )
        .push(vec![], self.captures_total as f64);
        Ok(())
    }

    fn programs(&mut self) -> Option<&mut BpfProgramSet> {
        Some(&mut self.programs)
    }
}

impl WaitrateProbe {
    fn contenders(
        &self,
        containers: &ContainerSet,
        taken: &HashMap<u64, u64>,
        exter_ns: u64,
    ) -> Vec<Contender> {
        rank_contenders(taken)
            .into_iter()
            .take(self.settings.max_contenders)
            .map(|(cgroup_id, ns)| {
                let known = containers.iter().find(|c| kernel_id(c) == cgroup_id);
                Contender {
                    container_id: known.map(|c| c.id.clone()).unwrap_or_default(),
                    container_hostname: known.map(|c| c.hostname.clone()).unwrap_or_default(),
                    cgroup_id,
                    cpu_time_ns: ns,
                    share: if exter_ns > 0 {
                        ns as f64 / exter_ns as f64
                    } else {
                        0.0
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
