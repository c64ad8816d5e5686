//! memburst (host): anonymous memory (Active(anon) + Inactive(anon) of `/proc/meminfo`) kept in a
//! ring of the last N samples (upstream 60 × 10 s). Fires when the current value is at least
//! (1 + ratio) × the oldest in the window (upstream ratio 1.0: doubled) AND at least a share of
//! MemTotal (upstream 70 %). The capture is the top processes by RSS.

use std::collections::VecDeque;

/// The `/proc/meminfo` values the rule needs, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total_kib: u64,
    pub anon_kib: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("/proc/meminfo has no `{0}` line")]
    Missing(&'static str),
    #[error("/proc/meminfo `{key}` is not a number: {text:?}")]
    BadValue { key: String, text: String },
}

pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let (mut total, mut active, mut inactive) = (None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "Active(anon)" => &mut active,
            "Inactive(anon)" => &mut inactive,
            _ => continue,
        };
        let val = rest.split_whitespace().next().unwrap_or("");
        *slot = Some(val.parse::<u64>().map_err(|_| ParseError::BadValue {
            key: key.to_string(),
            text: val.to_string(),
        })?);
    }
    Ok(MemInfo {
        mem_total_kib: total.ok_or(ParseError::Missing("MemTotal"))?,
        anon_kib: active.ok_or(ParseError::Missing("Active(anon)"))?
            + inactive.ok_or(ParseError::Missing("Inactive(anon)"))?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Samples kept (upstream 60).
    pub window: usize,
    /// Growth over the oldest sample: 1.0 = doubled.
    pub burst_ratio: f64,
    /// Share of MemTotal the current anon memory must reach, in percent.
    pub anon_percent_of_total: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            window: 60,
            burst_ratio: 1.0,
            anon_percent_of_total: 70.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fire {
    pub anon_kib: u64,
    pub oldest_anon_kib: u64,
    pub mem_total_kib: u64,
    pub thresholds: Thresholds,
}

/// The window of anon samples.
#[derive(Debug, Clone, Default)]
pub struct Window {
    samples: VecDeque<u64>,
}

impl Window {
    /// Adds a sample, keeps the last `t.window`, and applies the rule.
    pub fn push(&mut self, m: MemInfo, t: Thresholds) -> Option<Fire> {
        self.samples.push_back(m.anon_kib);
        while self.samples.len() > t.window.max(1) {
            self.samples.pop_front();
        }
        let oldest = *self.samples.front()?;
        decide(oldest, m, t)
    }

    /// After a capture the burst is accounted for: start a new window from the current value.
    pub fn reset(&mut self) {
        let last = self.samples.back().copied();
        self.samples.clear();
        self.samples.extend(last);
    }
}

/// The rule on the oldest sample of the window and the current meminfo.
pub fn decide(oldest_anon_kib: u64, m: MemInfo, t: Thresholds) -> Option<Fire> {
    let cur = m.anon_kib as f64;
    let grew =
        cur >= (1.0 + t.burst_ratio) * oldest_anon_kib as f64 && m.anon_kib > oldest_anon_kib;
    let big = cur * 100.0 >= t.anon_percent_of_total * m.mem_total_kib as f64;
    (grew && big).then_some(Fire {
        anon_kib: m.anon_kib,
        oldest_anon_kib,
        mem_total_kib: m.mem_total_kib,
        thresholds: t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(anon: u64) -> MemInfo {
        MemInfo {
            mem_total_kib: 1000,
            anon_kib: anon,
        }
    }

    #[test]
    fn parses_meminfo() {
        let s = "MemTotal:  1000 kB\nActive(anon):  100 kB\nInactive(anon): 50 kB\n";
        assert_eq!(
            parse_meminfo(s),
            Ok(MemInfo {
                mem_total_kib: 1000,
                anon_kib: 150
            })
        );
        assert_eq!(
            parse_meminfo("MemTotal: 1 kB\n"),
            Err(ParseError::Missing("Active(anon)"))
        );
    }

    #[test]
    fn fires_when_doubled_and_large() {
        let t = Thresholds {
            window: 3,
            ..Default::default()
        };
        let mut w = Window::default();
        assert!(w.push(m(300), t).is_none());
        assert!(w.push(m(500), t).is_none(), "not yet 70 %");
        let f = w.push(m(700), t).expect("doubled and 70 %");
        assert_eq!(f.oldest_anon_kib, 300);
    }

    #[test]
    fn does_not_fire_when_slow_or_small() {
        let t = Thresholds {
            window: 2,
            ..Default::default()
        };
        let mut w = Window::default();
        w.push(m(500), t);
        assert!(w.push(m(800), t).is_none(), "large but not doubled");
        w.reset();
        assert!(w.push(m(900), t).is_none(), "window restarted at 800");
        assert!(decide(100, m(300), t).is_none(), "tripled but small");
    }

    #[test]
    fn window_forgets_old_samples() {
        let t = Thresholds {
            window: 2,
            ..Default::default()
        };
        let mut w = Window::default();
        w.push(m(100), t);
        w.push(m(400), t);
        // 100 fell out; oldest is now 400, so 750 is not a doubling.
        assert!(w.push(m(750), t).is_none());
    }
}
