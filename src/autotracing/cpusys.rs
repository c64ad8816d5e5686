//! cpusys (host): sys% of the first `/proc/stat` line between two samples. Fires when sys% is
//! above its threshold AND rose by more than the delta threshold since the previous sample
//! (upstream: > 45 and Δ > 20), so a steadily sys-heavy host does not fire forever.

use std::fmt;

/// Cumulative jiffies of the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub system: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("/proc/stat has no `cpu ` line")]
    NoCpuLine,
    #[error("/proc/stat `cpu` line field {index} is not a number: {text:?}")]
    BadField { index: usize, text: String },
    #[error("/proc/stat `cpu` line has {0} fields, need at least 4")]
    TooShort(usize),
}

/// Parses the aggregate `cpu` line: user nice system idle iowait irq softirq steal (guest are
/// already in user/nice, so they are not added again).
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes, ParseError> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or(ParseError::NoCpuLine)?;
    let mut fields = Vec::with_capacity(10);
    for (index, f) in line.split_whitespace().skip(1).enumerate() {
        let v = f.parse::<u64>().map_err(|_| ParseError::BadField {
            index,
            text: f.to_string(),
        })?;
        fields.push(v);
    }
    if fields.len() < 4 {
        return Err(ParseError::TooShort(fields.len()));
    }
    let total = fields.iter().take(8).sum();
    Ok(CpuTimes {
        system: fields[2],
        total,
    })
}

/// sys% between two samples; None when no time passed (or the counters went back).
pub fn system_percent(prev: CpuTimes, cur: CpuTimes) -> Option<f64> {
    let dt = cur.total.checked_sub(prev.total)?;
    let ds = cur.system.checked_sub(prev.system)?;
    (dt > 0).then(|| ds as f64 * 100.0 / dt as f64)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub system_percent: f64,
    pub system_percent_delta: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            system_percent: 45.0,
            system_percent_delta: 20.0,
        }
    }
}

/// What a firing looked like; these become the document's upstream fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fire {
    pub system_percent: f64,
    pub system_percent_delta: f64,
    pub thresholds: Thresholds,
}

impl fmt::Display for Fire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sys {:.1}% > {} and rose {:.1} > {}",
            self.system_percent,
            self.thresholds.system_percent,
            self.system_percent_delta,
            self.thresholds.system_percent_delta
        )
    }
}

/// The rule: `prev_percent` is the previous interval's sys% (None on the first interval).
pub fn decide(prev_percent: Option<f64>, cur_percent: f64, t: Thresholds) -> Option<Fire> {
    let delta = cur_percent - prev_percent?;
    (cur_percent > t.system_percent && delta > t.system_percent_delta).then_some(Fire {
        system_percent: cur_percent,
        system_percent_delta: delta,
        thresholds: t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_line() {
        let s = "cpu  10 0 30 50 5 3 2 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(
            parse_proc_stat(s),
            Ok(CpuTimes {
                system: 30,
                total: 100
            })
        );
        assert_eq!(parse_proc_stat("intr 1\n"), Err(ParseError::NoCpuLine));
        assert!(matches!(
            parse_proc_stat("cpu  1 x 3 4"),
            Err(ParseError::BadField { index: 1, .. })
        ));
        assert_eq!(parse_proc_stat("cpu  1 2"), Err(ParseError::TooShort(2)));
    }

    #[test]
    fn percent_between_samples() {
        let a = CpuTimes {
            system: 10,
            total: 100,
        };
        let b = CpuTimes {
            system: 60,
            total: 200,
        };
        assert_eq!(system_percent(a, b), Some(50.0));
        assert_eq!(system_percent(a, a), None);
        assert_eq!(system_percent(b, a), None);
    }

    #[test]
    fn fires_on_high_and_rising() {
        let f = decide(Some(10.0), 50.0, Thresholds::default()).expect("fires");
        assert_eq!(f.system_percent_delta, 40.0);
    }

    #[test]
    fn does_not_fire_when_steady_or_low_or_first() {
        let t = Thresholds::default();
        assert!(decide(Some(40.0), 50.0, t).is_none(), "high but steady");
        assert!(decide(Some(0.0), 40.0, t).is_none(), "rising but below 45");
        assert!(decide(None, 90.0, t).is_none(), "no previous sample");
    }
}
