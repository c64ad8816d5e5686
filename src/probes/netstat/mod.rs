//! netstat: protocol counters of `/proc/<pid>/net/netstat` and `/proc/<pid>/net/snmp` for the host
//! network namespace (pid 1) → `huatuo_bamai_netstat_<Proto>_<Field>` and for each container's
//! (its init pid) → `huatuo_bamai_netstat_container_<Proto>_<Field>{<container labels>}`.
//! Gauges holding the kernel's cumulative values, as upstream. Containers on the host network are
//! skipped (see [`crate::probes::common::netns`]).

use std::collections::HashMap;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::file;
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::netns;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "netstat";
/// Read in this order (upstream merges snmp into netstat).
const FILES: [&str; 2] = ["netstat", "snmp"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/1/net/{netstat,snmp} -> huatuo_bamai_netstat_<Proto>_<Field>; a container's
/// <procfs_root>/<init pid>/net/{netstat,snmp} -> huatuo_bamai_netstat_container_<Proto>_<Field>.
/// Key patterns on "<Proto>_<Field>": exact key, "prefix*" or "re:<regex>"; excluded wins.
pub struct NetstatConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// `Proto_Field` keys to export: exact keys or prefixes ending in `*`; empty exports all.
    pub included: Vec<String>,
    /// Keys never exported (same syntax); applied after `included`.
    pub excluded: Vec<String>,
}

impl Default for NetstatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            // Upstream's parser keeps only the Tcp and TcpExt sections.
            included: vec!["Tcp_*".into(), "TcpExt_*".into()],
            excluded: Vec::new(),
        }
    }
}

impl NetstatConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Prefix)
            .include("included", &self.included)?
            .exclude("excluded", &self.excluded)
    }

    fn check(&self) -> Result<(), String> {
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(NetstatConfig, "netstat", NetstatConfig::check);

/// Parses a `/proc/net/netstat` or `/proc/net/snmp` file: pairs of lines
/// `Proto: Field1 Field2 ...` / `Proto: value1 value2 ...`. Returns `(Proto, Field, value)` in
/// file order.
pub fn parse_netstat(text: &str) -> Result<Vec<(String, String, f64)>, String> {
    let mut stats = Vec::new();
    let mut protos: Vec<&str> = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(header) = lines.next() {
        let mut names = header.split_whitespace();
        let proto = names
            .next()
            .and_then(|p| p.strip_suffix(':'))
            .filter(|p| is_name(p))
            .ok_or_else(|| format!("header `{header}` does not start with `<Proto>:`"))?;
        if protos.contains(&proto) {
            return Err(format!("{proto}: section repeated"));
        }
        protos.push(proto);
        let values_line = lines
            .next()
            .ok_or_else(|| format!("{proto}: missing value line"))?;
        let mut values = values_line.split_whitespace();
        if values.next() != Some(&format!("{proto}:")) {
            return Err(format!(
                "{proto}: value line `{values_line}` does not start with `{proto}:`"
            ));
        }
        let names: Vec<&str> = names.collect();
        let values: Vec<&str> = values.collect();
        if names.len() != values.len() {
            return Err(format!(
                "{proto}: {} fields but {} values",
                names.len(),
                values.len()
            ));
        }
        for (field, raw) in names.into_iter().zip(values) {
            if !is_name(field) {
                return Err(format!(
                    "{proto}: field name `{field}` is not a metric name"
                ));
            }
            let value = parse_value(raw)
                .ok_or_else(|| format!("{proto}_{field}: `{raw}` is not an integer"))?;
            stats.push((proto.to_string(), field.to_string(), value));
        }
    }
    Ok(stats)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The kernel prints unsigned counters, and a few signed fields (`Tcp: MaxConn` is -1).
fn parse_value(raw: &str) -> Option<f64> {
    match raw.strip_prefix('-') {
        Some(abs) => abs.parse::<u64>().ok().map(|v| -(v as f64)),
        None => raw.parse::<u64>().ok().map(|v| v as f64),
    }
}

/// One family's name, help and samples, gathered before it is added to the set.
type PendingFamily = (String, String, Vec<(Labels, f64)>);

/// Samples grouped per family, families in first-seen order (one lookup per family at the end).
#[derive(Default)]
struct Families {
    index: HashMap<String, usize>,
    list: Vec<PendingFamily>,
}

impl Families {
    fn push(&mut self, name: String, help: impl FnOnce() -> String, labels: Labels, value: f64) {
        let i = match self.index.get(&name) {
            Some(&i) => i,
            None => {
                self.list.push((name.clone(), help(), Vec::new()));
                self.index.insert(name, self.list.len() - 1);
                self.list.len() - 1
            }
        };
        self.list[i].2.push((labels, value));
    }

    fn emit(self, out: &mut MetricSet) {
        for (name, help, samples) in self.list {
            let family = out.gauge(&name, &help);
            for (labels, value) in samples {
                family.push(labels, value);
            }
        }
    }
}

pub struct NetstatProbe {
    ctx: ProbeContext,
    filter: NameFilter,
    warn: WarnOnce,
}

impl Probe for NetstatProbe {
    const NAME: &'static str = NAME;
    type Settings = NetstatConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let filter = settings.filter().map_err(invalid_config(NAME))?;
        Ok(Self {
            ctx: ctx.clone(),
            filter,
            warn: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let mut families = Families::default();
        let mut collected = false;
        let mut first_error = None;

        let host_dir = netns::host_net_dir(&self.ctx);
        let containers = netns::container_netns(&self.ctx);
        let targets = std::iter::once((None, host_dir)).chain(
            containers
                .into_iter()
                .map(|c| (Some(c.container), c.net_dir)),
        );
        for (container, net_dir) in targets {
            let labels = container.as_ref().map(|c| c.labels()).unwrap_or_default();
            for source in FILES {
                let stats = match file::read_parsed(NAME, &net_dir.join(source), parse_netstat) {
                    Ok(stats) => stats,
                    Err(error) => {
                        self.warn.warn_error(&error);
                        first_error.get_or_insert(error);
                        continue;
                    }
                };
                collected = true;
                for (proto, field, value) in stats {
                    let key = format!("{proto}_{field}");
                    if !self.filter.matches(&key) {
                        continue;
                    }
                    let (name, scope) = match container {
                        None => (format!("huatuo_bamai_netstat_{key}"), "host"),
                        Some(_) => (format!("huatuo_bamai_netstat_container_{key}"), "container"),
                    };
                    let help = || {
                        format!("{proto} {field} of the {scope} network namespace (/proc/<pid>/net/{source}).")
                    };
                    families.push(name, help, labels.clone(), value);
                }
            }
        }
        self.warn.end_tick();
        families.emit(out);

        match first_error {
            Some(error) if !collected => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
