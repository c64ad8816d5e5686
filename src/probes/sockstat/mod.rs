//! sockstat: `/proc/<pid>/net/sockstat` for the host network namespace (pid 1) →
//! `huatuo_bamai_sockstat_sockets_used`, `huatuo_bamai_sockstat_<PROTO>_<key>` (+ `<PROTO>_mem_bytes`),
//! and for each container's (its init pid) → `huatuo_bamai_sockstat_container_*` without `mem` and
//! `mem_bytes` (socket memory is accounted host-wide, as upstream). Also upstream's `tcp_memory`
//! collector: host TCP memory against `net.ipv4.tcp_mem` → `huatuo_bamai_tcp_memory_*`.
//! Containers on the host network are skipped (see [`crate::probes::common::netns`]).

use std::path::Path;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::{Labels, MetricSet};
use crate::probes::common::file;
use crate::probes::common::netns;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "sockstat";
/// Keys exported per protocol, in upstream's order (`memory` is FRAG's, in bytes).
const KEYS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// <procfs_root>/1/net/sockstat -> huatuo_bamai_sockstat_* and, with <procfs_root>/sys/net/ipv4/tcp_mem,
/// huatuo_bamai_tcp_memory_*; a container's <procfs_root>/<init pid>/net/sockstat ->
/// huatuo_bamai_sockstat_container_* (without mem/mem_bytes).
pub struct SockstatConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
}

impl Default for SockstatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
        }
    }
}

crate::probe_settings!(SockstatConfig, "sockstat");

/// One protocol line: `TCP: inuse 1 orphan 0 tw 143 alloc 1 mem 157`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolStats {
    pub protocol: String,
    /// `(key, value)` in file order.
    pub values: Vec<(String, u64)>,
}

impl ProtocolStats {
    pub fn get(&self, key: &str) -> Option<u64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sockstat {
    /// `sockets: used N`.
    pub sockets_used: Option<u64>,
    pub protocols: Vec<ProtocolStats>,
}

impl Sockstat {
    pub fn protocol(&self, name: &str) -> Option<&ProtocolStats> {
        self.protocols.iter().find(|p| p.protocol == name)
    }
}

/// Parses `/proc/<pid>/net/sockstat`: `<PROTO>: key value key value ...` lines.
pub fn parse_sockstat(text: &str) -> Result<Sockstat, String> {
    let mut stat = Sockstat::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (proto, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("line `{line}` has no `<PROTO>:`"))?;
        if proto.is_empty() || !proto.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("protocol `{proto}` is not a metric name"));
        }
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        if tokens.is_empty() || !tokens.len().is_multiple_of(2) {
            return Err(format!(
                "{proto}: `{}` is not `key value` pairs",
                rest.trim()
            ));
        }
        let mut values = Vec::with_capacity(tokens.len() / 2);
        for pair in tokens.chunks_exact(2) {
            let value = pair[1]
                .parse::<u64>()
                .map_err(|_| format!("{proto} {}: `{}` is not a count", pair[0], pair[1]))?;
            values.push((pair[0].to_string(), value));
        }
        if proto == "sockets" {
            stat.sockets_used = values.iter().find(|(k, _)| k == "used").map(|(_, v)| *v);
        } else if stat.protocol(proto).is_some() {
            return Err(format!("{proto}: line repeated"));
        } else {
            stat.protocols.push(ProtocolStats {
                protocol: proto.to_string(),
                values,
            });
        }
    }
    if stat.sockets_used.is_none() && stat.protocols.is_empty() {
        return Err("no `sockets:` or protocol line".into());
    }
    Ok(stat)
}

/// The third value of `net.ipv4.tcp_mem` (`min pressure max`, in pages).
pub fn parse_tcp_mem_limit(text: &str) -> Result<u64, String> {
    let raw = text
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| format!("`{}` has fewer than 3 values", text.trim()))?;
    raw.parse()
        .map_err(|_| format!("max `{raw}` is not a page count"))
}

/// Host TCP socket memory against its hard limit: upstream's `tcp_memory` collector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpMemory {
    pub usage_pages: u64,
    pub usage_bytes: u64,
    pub limit_pages: u64,
    /// usage / limit as a ratio 0–1 (upstream's name says percent), 0 without a limit.
    pub usage_percent: f64,
}

impl TcpMemory {
    pub fn new(usage_pages: u64, limit_pages: u64, page_size: u64) -> Self {
        Self {
            usage_pages,
            usage_bytes: usage_pages.saturating_mul(page_size),
            limit_pages,
            usage_percent: if limit_pages > 0 {
                usage_pages as f64 / limit_pages as f64
            } else {
                0.0
            },
        }
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

pub struct SockstatProbe {
    ctx: ProbeContext,
    warn: WarnOnce,
    /// Bytes per page for `mem_bytes` (the host's; tests pin it).
    page_size: u64,
}

impl SockstatProbe {
    fn tcp_memory(&self, host: &Sockstat, host_path: &Path) -> Result<TcpMemory, ProbeError> {
        let usage = host
            .protocol("TCP")
            .and_then(|p| p.get("mem"))
            .ok_or_else(|| file::malformed(NAME, host_path, "no TCP `mem` value".into()))?;
        let path = self.ctx.procfs("sys/net/ipv4/tcp_mem");
        let limit = file::read_parsed(NAME, &path, parse_tcp_mem_limit)?;
        Ok(TcpMemory::new(usage, limit, self.page_size))
    }
}

/// Pushes one namespace's sockstat; `container` labels select the container families.
fn push_sockstat(out: &mut MetricSet, stat: &Sockstat, container: Option<&Labels>, page_size: u64) {
    let (prefix, scope) = match container {
        None => ("huatuo_bamai_sockstat_", "host"),
        Some(_) => ("huatuo_bamai_sockstat_container_", "container"),
    };
    let labels = || container.cloned().unwrap_or_default();
    if let Some(used) = stat.sockets_used {
        out.gauge(
            &format!("{prefix}sockets_used"),
            &format!("Sockets in use in the {scope} network namespace (/proc/<pid>/net/sockstat)."),
        )
        .push(labels(), used as f64);
    }
    for proto in &stat.protocols {
        for key in KEYS {
            // Socket memory is host-wide: containers do not export it (as upstream).
            if container.is_some() && key == "mem" {
                continue;
            }
            let Some(value) = proto.get(key) else {
                continue;
            };
            out.gauge(
                &format!("{prefix}{}_{key}", proto.protocol),
                &format!(
                    "{} sockets: {key} in the {scope} network namespace (/proc/<pid>/net/sockstat).",
                    proto.protocol
                ),
            )
            .push(labels(), value as f64);
        }
        if container.is_none() {
            if let Some(pages) = proto.get("mem") {
                out.gauge(
                    &format!("{prefix}{}_mem_bytes", proto.protocol),
                    &format!(
                        "{} socket memory in bytes (mem pages x page size).",
                        proto.protocol
                    ),
                )
                .push(labels(), pages.saturating_mul(page_size) as f64);
            }
        }
    }
}

impl Probe for SockstatProbe {
    const NAME: &'static str = NAME;
    type Settings = SockstatConfig;

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self {
            ctx: ctx.clone(),
            warn: WarnOnce::default(),
            page_size: page_size(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let mut collected = false;
        let mut first_error = None;

        let host_path = netns::host_net_dir(&self.ctx).join("sockstat");
        match file::read_parsed(NAME, &host_path, parse_sockstat) {
            Ok(host) => {
                collected = true;
                push_sockstat(out, &host, None, self.page_size);
                match self.tcp_memory(&host, &host_path) {
                    Ok(tcp) => push_tcp_memory(out, &tcp),
                    Err(error) => self.warn.warn_error(&error),
                }
            }
            Err(error) => {
                self.warn.warn_error(&error);
                first_error = Some(error);
            }
        }

        for target in netns::container_netns(&self.ctx) {
            match file::read_parsed(NAME, &target.net_dir.join("sockstat"), parse_sockstat) {
                Ok(stat) => {
                    collected = true;
                    let labels = target.container.labels();
                    push_sockstat(out, &stat, Some(&labels), self.page_size);
                }
                Err(error) => {
                    self.warn.warn_error(&error);
                    first_error.get_or_insert(error);
                }
            }
        }
        self.warn.end_tick();

        match first_error {
            Some(error) if !collected => Err(error),
            _ => Ok(()),
        }
    }
}

fn push_tcp_memory(out: &mut MetricSet, tcp: &TcpMemory) {
    out.gauge(
        "huatuo_bamai_tcp_memory_usage_pages",
        "TCP socket memory in pages (TCP mem of /proc/1/net/sockstat).",
    )
    .push(vec![], tcp.usage_pages as f64);
    out.gauge(
        "huatuo_bamai_tcp_memory_usage_bytes",
        "TCP socket memory in bytes (usage_pages x page size).",
    )
    .push(vec![], tcp.usage_bytes as f64);
    out.gauge(
        "huatuo_bamai_tcp_memory_limit_pages",
        "TCP socket memory hard limit in pages (third value of net.ipv4.tcp_mem).",
    )
    .push(vec![], tcp.limit_pages as f64);
    out.gauge(
        "huatuo_bamai_tcp_memory_usage_percent",
        "TCP socket memory usage / limit as a ratio 0-1 (upstream's name).",
    )
    .push(vec![], tcp.usage_percent);
}

#[cfg(test)]
mod tests;
