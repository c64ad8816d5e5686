//! mountpoint: `/proc/1/mountinfo` (the host's mount namespace, not the agent's: a sandboxed
//! service or a container sees its own mounts in /proc/self) → `huatuo_bamai_mountpoint_perm_ro{mountpoint}` (upstream
//! name): 1 when the mount point is mounted read-only, 0 when read-write.

use std::collections::BTreeMap;
use std::path::PathBuf;

use documented::{Documented, DocumentedFieldsOpt};
use serde::{Deserialize, Serialize};

use crate::core::probe::{Probe, ProbeContext, ProbeError};
use crate::exposition::MetricSet;
use crate::probes::common::file;
use crate::probes::common::warn_once::WarnOnce;

const NAME: &str = "mountpoint";
/// Distinct malformed lines logged per tick, at most.
const MAX_WARNED_LINES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Documented, DocumentedFieldsOpt)]
#[serde(deny_unknown_fields, default)]
/// read-only mount points from /proc/self/mountinfo (mountpoint_perm_ro{mountpoint}: 1 ro, 0 rw)
pub struct MountpointConfig {
    /// Turn the probe on or off (`ctl enable` / `ctl disable`).
    pub enabled: bool,
    /// Collection period in ms (at least 100).
    pub interval_ms: u64,
    /// Mount points exported (exact paths); those not mounted are not exported.
    pub mountpoints_included: Vec<String>,
}

impl Default for MountpointConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 5000,
            mountpoints_included: vec!["/".into(), "/home".into(), "/boot".into()],
        }
    }
}

impl MountpointConfig {
    fn check(&self) -> Result<(), String> {
        for path in &self.mountpoints_included {
            if !path.starts_with('/') {
                return Err(format!(
                    "mountpoints_included: `{path}` must be an absolute path"
                ));
            }
        }
        Ok(())
    }
}

crate::probe_settings!(MountpointConfig, "mountpoint", MountpointConfig::check);

/// One `/proc/<pid>/mountinfo` line, reduced to what this probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Field 5, with the kernel's octal escapes (`\040` for a space ...) decoded.
    pub mount_point: String,
    /// `ro` is among the per-mount options (field 6).
    pub read_only: bool,
}

/// Parses one mountinfo line: `id parent major:minor root mount_point options [optional...] -
/// fstype source super_options`.
pub fn parse_mountinfo_line(line: &str) -> Result<Mount, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 {
        return Err(format!(
            "{} fields, at least 6 expected: `{line}`",
            fields.len()
        ));
    }
    if fields[0].parse::<u64>().is_err() || fields[1].parse::<u64>().is_err() {
        return Err(format!("mount id or parent id is not a number: `{line}`"));
    }
    let mount_point = unescape(fields[4]);
    if !mount_point.starts_with('/') {
        return Err(format!("mount point `{}` is not a path", fields[4]));
    }
    Ok(Mount {
        mount_point,
        read_only: fields[5].split(',').any(|o| o == "ro"),
    })
}

/// Decodes the `\ooo` octal escapes the kernel writes for space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read-only state of each mount point of `text`; when a path is mounted several times (an
/// over-mount), the last line wins: mountinfo lists mounts in mount order, so the last one is
/// the mount stacked on top, the one path lookups see. Only mount points `wanted` accepts are
/// kept; malformed lines are returned apart.
pub fn parse_mountinfo(
    text: &str,
    wanted: impl Fn(&str) -> bool,
) -> (BTreeMap<String, bool>, Vec<String>) {
    let mut mounts = BTreeMap::new();
    let mut errors = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_mountinfo_line(line) {
            Ok(mount) if wanted(&mount.mount_point) => {
                mounts.insert(mount.mount_point, mount.read_only);
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    (mounts, errors)
}

pub struct MountpointProbe {
    path: PathBuf,
    included: Vec<String>,
    /// Malformed lines, keyed by their message.
    warned: WarnOnce,
}

impl Probe for MountpointProbe {
    const NAME: &'static str = NAME;
    type Settings = MountpointConfig;

    fn start(settings: &Self::Settings, ctx: &ProbeContext) -> Result<Self, ProbeError> {
        Ok(Self {
            path: ctx.procfs("1/mountinfo"),
            included: settings.mountpoints_included.clone(),
            warned: WarnOnce::with_capacity(MAX_WARNED_LINES),
        })
    }

    fn collect(&mut self, out: &mut MetricSet) -> Result<(), ProbeError> {
        let text = file::read(NAME, &self.path)?;
        let included = &self.included;
        let (mounts, errors) = parse_mountinfo(&text, |m| included.iter().any(|p| p == m));
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        if errors.len() == lines {
            let reason = if lines == 0 {
                "empty file".to_string()
            } else {
                format!("no well-formed line; first: {}", errors[0])
            };
            return Err(file::malformed(NAME, &self.path, reason));
        }
        for error in errors {
            let line_error = file::malformed(NAME, &self.path, error.clone());
            self.warned.warn(&error, &line_error);
        }
        self.warned.end_tick();
        let family = out.gauge(
            "huatuo_bamai_mountpoint_perm_ro",
            "1 if the mount point is mounted read-only, 0 if read-write (/proc/1/mountinfo).",
        );
        for (mount_point, read_only) in mounts {
            family.push(
                vec![("mountpoint", mount_point)],
                f64::from(u8::from(read_only)),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
