//! diskio: `/proc/diskstats` → `huatuo_bamai_diskio_*{device}` (upstream names) and the host's
//! `huatuo_bamai_diskio_disk_iowait_percent` from the `cpu ` line of `/proc/stat`.

use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::name_filter::{invalid_config, NameFilter, Syntax};
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "diskio";

/// `/proc/diskstats` counts sectors of 512 bytes whatever the device's block size.
const SECTOR_BYTES: f64 = 512.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// /proc/diskstats per device (diskio_*{device}) and host iowait % from /proc/stat (diskio_disk_iowait_percent).
pub struct DiskioConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// Devices not exported: exact names, or prefixes written `name*`.
    pub device_excluded: Vec<String>,
}

impl Default for DiskioConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            device_excluded: vec!["ram*".into(), "fd*".into(), "sr*".into()],
        }
    }
}

impl DiskioConfig {
    fn filter(&self) -> Result<NameFilter, String> {
        NameFilter::new(Syntax::Prefix).exclude("device_excluded", &self.device_excluded)
    }

    fn check(&self) -> Result<(), String> {
        self.filter().map(|_| ())
    }
}

crate::probe_settings!(DiskioConfig, "diskio", DiskioConfig::check);

/// One line of `/proc/diskstats` (fields 4–14; later fields are not used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStats {
    pub device: String,
    pub reads: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub in_progress: u64,
    pub io_ms: u64,
    pub weighted_io_ms: u64,
}

/// Parses one `/proc/diskstats` line ("major minor name" then at least 11 numbers).
pub fn parse_diskstats_line(line: &str) -> Result<DiskStats, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let device = fields
        .get(2)
        .ok_or_else(|| "line has no device name".to_string())?;
    if fields.len() < 14 {
        return Err(format!(
            "device {device}: {} fields, at least 14 expected",
            fields.len()
        ));
    }
    let number = |index: usize| -> Result<u64, String> {
        fields[index].parse::<u64>().map_err(|_| {
            format!(
                "device {device}: field {} `{}` is not a number",
                index + 1,
                fields[index]
            )
        })
    };
    Ok(DiskStats {
        device: device.to_string(),
        reads: number(3)?,
        sectors_read: number(5)?,
        read_ms: number(6)?,
        writes: number(7)?,
        sectors_written: number(9)?,
        write_ms: number(10)?,
        in_progress: number(11)?,
        io_ms: number(12)?,
        weighted_io_ms: number(13)?,
    })
}

/// The busy and total jiffies of the `cpu ` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub iowait: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is already
    /// part of user and nice).
    pub total: u64,
}

/// Finds and parses the aggregate `cpu ` line of `/proc/stat`.
pub fn parse_cpu_times(text: &str) -> Result<CpuTimes, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| "no `cpu ` line".to_string())?;
    let mut values = Vec::with_capacity(8);
    for raw in line.split_whitespace().skip(1).take(8) {
        let value = raw
            .parse::<u64>()
            .map_err(|_| format!("cpu line: `{raw}` is not a number"))?;
        values.push(value);
    }
    // user nice system idle iowait: iowait is the fifth column (Linux 2.5.41+).
    let iowait = *values
        .get(4)
        .ok_or_else(|| format!("cpu line: {} columns, iowait missing", values.len()))?;
    let total = values
        .iter()
        .try_fold(0u64, |sum, v| sum.checked_add(*v))
        .ok_or_else(|| "cpu line: sum overflows".to_string())?;
    Ok(CpuTimes { iowait, total })
}

/// iowait share of CPU time between two samples, in percent; `None` when the counters went
/// backwards or did not move (no meaningful value for this interval).
pub fn iowait_percent(previous: CpuTimes, current: CpuTimes) -> Option<f64> {
    let total = current.total.checked_sub(previous.total)?;
    let iowait = current.iowait.checked_sub(previous.iowait)?;
    if total == 0 || iowait > total {
        return None;
    }
    Some(iowait as f64 / total as f64 * 100.0)
}

pub struct DiskioProbe {
    diskstats: PathBuf,
    stat: PathBuf,
    filter: NameFilter,
    previous_cpu: Option<CpuTimes>,
    warned: WarnOnce,
}

impl DiskioProbe {
    /// The devices the filter keeps; a malformed line skips only its device (logged once).
    fn read_devices(&mut self) -> Result<Vec<DiskStats>, ProbeError> {
        let text = file::read(NAME, &self.diskstats)?;
        let mut devices = Vec::new();
        let mut malformed = 0usize;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse_diskstats_line(line) {
                Ok(stats) => {
                    if self.filter.matches(&stats.device) {
                        devices.push(stats);
                    }
                }
                Err(reason) => {
                    malformed += 1;
                    let device = line.split_whitespace().nth(2).unwrap_or("?");
                    let key = format!("{} ({device})", self.diskstats.display());
                    let error = file::malformed(NAME, &self.diskstats, reason);
                    self.warned.warn(&key, &error);
                }
            }
        }
        if devices.is_empty() && malformed > 0 {
            return Err(file::malformed(
                NAME,
                &self.diskstats,
                format!("no well-formed line ({malformed} malformed)"),
            ));
        }
        Ok(devices)
    }
}

impl Probe for DiskioProbe {
    const NAME: &'static str = NAME;
    type Settings = DiskioConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        let filter = settings.filter().map_err(invalid_config(NAME))?;
        Ok(Self {
            diskstats: ctx.procfs("diskstats"),
            stat: ctx.procfs("stat"),
            filter,
            previous_cpu: None,
            warned: WarnOnce::default(),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let devices = self.read_devices();
        let iowait = match file::read_parsed(NAME, &self.stat, parse_cpu_times) {
            Ok(current) => self
                .previous_cpu
                .replace(current)
                .and_then(|previous| iowait_percent(previous, current)),
            Err(e) => {
                self.warned.warn_error(&e);
                None
            }
        };
        let devices = match devices {
            Ok(devices) => devices,
            // Nothing at all to export: the tick failed.
            Err(e) if iowait.is_none() => {
                self.warned.end_tick();
                return Err(e);
            }
            Err(e) => {
                self.warned.warn_error(&e);
                Vec::new()
            }
        };
        self.warned.end_tick();

        type Field = fn(&DiskStats) -> f64;
        let counters: [(&str, &str, Field); 8] = [
            (
                "huatuo_bamai_diskio_read_requests_total",
                "Reads completed successfully (/proc/diskstats field 4).",
                |d| d.reads as f64,
            ),
            (
                "huatuo_bamai_diskio_write_requests_total",
                "Writes completed successfully (/proc/diskstats field 8).",
                |d| d.writes as f64,
            ),
            (
                "huatuo_bamai_diskio_read_bytes_total",
                "Bytes read: sectors read x 512 (/proc/diskstats field 6).",
                |d| d.sectors_read as f64 * SECTOR_BYTES,
            ),
            (
                "huatuo_bamai_diskio_written_bytes_total",
                "Bytes written: sectors written x 512 (/proc/diskstats field 10).",
                |d| d.sectors_written as f64 * SECTOR_BYTES,
            ),
            (
                "huatuo_bamai_diskio_read_time_seconds_total",
                "Seconds spent by completed reads (/proc/diskstats field 7).",
                |d| d.read_ms as f64 / 1000.0,
            ),
            (
                "huatuo_bamai_diskio_write_time_seconds_total",
                "Seconds spent by completed writes (/proc/diskstats field 11).",
                |d| d.write_ms as f64 / 1000.0,
            ),
            (
                "huatuo_bamai_diskio_io_time_seconds_total",
                "Seconds the device had I/O in flight (/proc/diskstats field 13).",
                |d| d.io_ms as f64 / 1000.0,
            ),
            (
                "huatuo_bamai_diskio_io_time_weighted_seconds_total",
                "Seconds spent doing I/O weighted by requests in flight (/proc/diskstats field 14).",
                |d| d.weighted_io_ms as f64 / 1000.0,
            ),
        ];
        for (name, help, value) in counters {
            let family = out.counter(name, help);
            for d in &devices {
                family.push(vec![("device", d.device.clone())], value(d));
            }
        }
        let in_progress = out.gauge(
            "huatuo_bamai_diskio_io_in_progress",
            "I/O requests in flight (/proc/diskstats field 12).",
        );
        for d in &devices {
            in_progress.push(vec![("device", d.device.clone())], d.in_progress as f64);
        }
        if let Some(percent) = iowait {
            out.gauge(
                "huatuo_bamai_diskio_disk_iowait_percent",
                "Share of CPU time spent in iowait since the previous collection, in percent (/proc/stat).",
            )
            .push(vec![], percent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
