//! loadavg: `/proc/loadavg` → `huatuo_bamai_loadavg_load1|load5|load15` (host gauges, upstream names).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::exposition::MetricSet;
use crate::probes::{Probe, ProbeContext, ProbeError};

const NAME: &str = "loadavg";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadavgConfig {
    pub enabled: bool,
    pub interval_ms: u64,
}

impl Default for LoadavgConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

crate::probe_settings!(LoadavgConfig);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAverage {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// Parses `/proc/loadavg` ("0.12 0.34 0.56 1/234 5678").
pub fn parse_loadavg(text: &str) -> Result<LoadAverage, String> {
    let mut fields = text.split_whitespace();
    let mut next = |name: &str| -> Result<f64, String> {
        let raw = fields
            .next()
            .ok_or_else(|| format!("missing {name} field"))?;
        let value: f64 = raw
            .parse()
            .map_err(|_| format!("{name} `{raw}` is not a number"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("{name} `{raw}` is out of range"));
        }
        Ok(value)
    };
    Ok(LoadAverage {
        load1: next("load1")?,
        load5: next("load5")?,
        load15: next("load15")?,
    })
}

pub struct LoadavgProbe {
    path: PathBuf,
}

impl Probe for LoadavgProbe {
    const NAME: &'static str = NAME;
    type Settings = LoadavgConfig;

    fn settings(probes: &crate::config::ProbesConfig) -> &Self::Settings {
        &probes.loadavg
    }

    fn start(_settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self {
            path: ctx.procfs("loadavg"),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let path = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|source| ProbeError::Read {
            probe: NAME,
            path: path.clone(),
            source,
        })?;
        let load = parse_loadavg(&text).map_err(|reason| ProbeError::Parse {
            probe: NAME,
            path,
            reason,
        })?;
        out.gauge(
            "huatuo_bamai_loadavg_load1",
            "System load average over 1 minute (/proc/loadavg).",
        )
        .push(vec![], load.load1);
        out.gauge(
            "huatuo_bamai_loadavg_load5",
            "System load average over 5 minutes (/proc/loadavg).",
        )
        .push(vec![], load.load5);
        out.gauge(
            "huatuo_bamai_loadavg_load15",
            "System load average over 15 minutes (/proc/loadavg).",
        )
        .push(vec![], load.load15);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
