//! cpuidle (container): user/sys/total CPU of a container as a percent of its capacity (its
//! quota in cores, or the host's cores without a quota), between two samples of its cgroup usage.
//! Upstream's three rules, any one fires: (user > 75 ∧ Δuser > 45) ∨ (sys > 45 ∧ Δsys > 20) ∨
//! (total > 90 ∧ Δtotal > 55). Of the containers that fire, the highest-scoring one is captured.

/// Cumulative CPU time of a cgroup in microseconds (cgroup v2 `cpu.stat`: user_usec, system_usec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupCpu {
    pub user_usec: u64,
    pub system_usec: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("cpu.stat has no `{0}` line")]
    Missing(&'static str),
    #[error("cpu.stat `{key}` is not a number: {text:?}")]
    BadValue { key: String, text: String },
}

/// Parses cgroup v2 `cpu.stat`.
pub fn parse_cpu_stat(text: &str) -> Result<CgroupCpu, ParseError> {
    let mut user = None;
    let mut system = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(val)) = (it.next(), it.next()) else {
            continue;
        };
        let slot = match key {
            "user_usec" => &mut user,
            "system_usec" => &mut system,
            _ => continue,
        };
        *slot = Some(val.parse::<u64>().map_err(|_| ParseError::BadValue {
            key: key.to_string(),
            text: val.to_string(),
        })?);
    }
    Ok(CgroupCpu {
        user_usec: user.ok_or(ParseError::Missing("user_usec"))?,
        system_usec: system.ok_or(ParseError::Missing("system_usec"))?,
    })
}

/// USER_HZ, the unit of cgroup v1 `cpuacct.stat` (fixed at 100 by the kernel ABI on x86 and arm64).
pub const USER_HZ: u64 = 100;

/// Parses cgroup v1 `cpuacct.stat` (`user <ticks>`, `system <ticks>` in USER_HZ).
pub fn parse_cpuacct_stat(text: &str) -> Result<CgroupCpu, ParseError> {
    let mut user = None;
    let mut system = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(val)) = (it.next(), it.next()) else {
            continue;
        };
        let slot = match key {
            "user" => &mut user,
            "system" => &mut system,
            _ => continue,
        };
        let ticks = val.parse::<u64>().map_err(|_| ParseError::BadValue {
            key: key.to_string(),
            text: val.to_string(),
        })?;
        *slot = Some(ticks.saturating_mul(1_000_000 / USER_HZ));
    }
    Ok(CgroupCpu {
        user_usec: user.ok_or(ParseError::Missing("user"))?,
        system_usec: system.ok_or(ParseError::Missing("system"))?,
    })
}

/// A CPU quota in cores from cgroup v2 `cpu.max` (`$MAX $PERIOD`); `None` = `max` (no quota).
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut fields = text.split_whitespace();
    let bad = || format!("cpu.max `{}` is not `$MAX $PERIOD`", text.trim());
    let (Some(max), Some(period)) = (fields.next(), fields.next()) else {
        return Err(bad());
    };
    if max == "max" {
        return Ok(None);
    }
    let max: u64 = max.parse().map_err(|_| bad())?;
    let period: u64 = period.parse().map_err(|_| bad())?;
    if max == 0 || period == 0 {
        return Err(bad());
    }
    Ok(Some(max as f64 / period as f64))
}

/// A CPU quota in cores from cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`; `None` = `-1`.
pub fn parse_cfs_quota(quota: &str, period: &str) -> Result<Option<f64>, String> {
    let quota: i64 = quota
        .trim()
        .parse()
        .map_err(|_| format!("cpu.cfs_quota_us `{}` is not an integer", quota.trim()))?;
    if quota < 0 {
        return Ok(None);
    }
    let period: u64 = period
        .trim()
        .parse()
        .map_err(|_| format!("cpu.cfs_period_us `{}` is not an integer", period.trim()))?;
    if quota == 0 || period == 0 {
        return Err(format!(
            "quota {quota} / period {period} is not a CPU limit"
        ));
    }
    Ok(Some(quota as f64 / period as f64))
}

/// CPUs in a kernel CPU list (`0-3,8,10-11`, as `/sys/devices/system/cpu/online`).
pub fn cpu_list_count(text: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let one = part.parse::<u32>().ok()?;
                (one, one)
            }
        };
        count += last.checked_sub(first)? + 1;
    }
    (count > 0).then_some(count)
}

/// Usage in percent of the container's capacity over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub user: f64,
    pub system: f64,
    pub total: f64,
}

/// Percent of `cores` (quota / period, or the host's CPUs) used between two samples `wall_usec` apart.
pub fn usage(prev: CgroupCpu, cur: CgroupCpu, wall_usec: u64, cores: f64) -> Option<Usage> {
    let cap = wall_usec as f64 * cores;
    if cap <= 0.0 {
        return None;
    }
    let user = cur.user_usec.checked_sub(prev.user_usec)? as f64 * 100.0 / cap;
    let system = cur.system_usec.checked_sub(prev.system_usec)? as f64 * 100.0 / cap;
    Some(Usage {
        user,
        system,
        total: user + system,
    })
}

/// One (level, delta) pair per rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub percent: f64,
    pub delta: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub user: Rule,
    pub system: Rule,
    pub total: Rule,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            user: Rule {
                percent: 75.0,
                delta: 45.0,
            },
            system: Rule {
                percent: 45.0,
                delta: 20.0,
            },
            total: Rule {
                percent: 90.0,
                delta: 55.0,
            },
        }
    }
}

/// A firing: current usage, its rise, the thresholds (the document's `*_percent`, `*_delta`,
/// `*_threshold`, `*_delta_threshold`) and a score to rank containers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fire {
    pub usage: Usage,
    pub delta: Usage,
    pub thresholds: Thresholds,
    pub score: f64,
}

/// The rule for one container; `prev` is its previous interval's usage (None on the first).
pub fn decide(prev: Option<Usage>, cur: Usage, t: Thresholds) -> Option<Fire> {
    let prev = prev?;
    let delta = Usage {
        user: cur.user - prev.user,
        system: cur.system - prev.system,
        total: cur.total - prev.total,
    };
    let over = |v: f64, d: f64, r: Rule| v > r.percent && d > r.delta;
    let fired = over(cur.user, delta.user, t.user)
        || over(cur.system, delta.system, t.system)
        || over(cur.total, delta.total, t.total);
    // Score: how far past the thresholds the container went, summed over the three rules.
    let score = (cur.user - t.user.percent).max(0.0)
        + (cur.system - t.system.percent).max(0.0)
        + (cur.total - t.total.percent).max(0.0)
        + delta.total.max(0.0);
    fired.then_some(Fire {
        usage: cur,
        delta,
        thresholds: t,
        score,
    })
}

/// Picks the highest-scoring firing container.
pub fn pick<K>(fires: impl IntoIterator<Item = (K, Fire)>) -> Option<(K, Fire)> {
    fires
        .into_iter()
        .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(user: f64, system: f64) -> Usage {
        Usage {
            user,
            system,
            total: user + system,
        }
    }

    #[test]
    fn parses_cpu_stat() {
        let s = "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_periods 0\n";
        assert_eq!(
            parse_cpu_stat(s),
            Ok(CgroupCpu {
                user_usec: 20,
                system_usec: 10
            })
        );
        assert_eq!(
            parse_cpu_stat("user_usec 1\n"),
            Err(ParseError::Missing("system_usec"))
        );
        assert!(matches!(
            parse_cpu_stat("user_usec x\nsystem_usec 1"),
            Err(ParseError::BadValue { .. })
        ));
    }

    #[test]
    fn parses_v1_cpuacct_and_quotas() {
        assert_eq!(
            parse_cpuacct_stat("user 150\nsystem 20\n"),
            Ok(CgroupCpu {
                user_usec: 1_500_000,
                system_usec: 200_000
            })
        );
        assert_eq!(
            parse_cpuacct_stat("user 1\n"),
            Err(ParseError::Missing("system"))
        );
        assert_eq!(parse_cpu_max("50000 100000\n"), Ok(Some(0.5)));
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert!(parse_cpu_max("0 100000").is_err());
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), Ok(None));
        assert_eq!(parse_cfs_quota("150000\n", "100000\n"), Ok(Some(1.5)));
        assert!(parse_cfs_quota("x", "100000").is_err());
        assert_eq!(cpu_list_count("0-1\n"), Some(2));
        assert_eq!(cpu_list_count("0-3,8,10-11"), Some(7));
        assert_eq!(cpu_list_count("3-1"), None);
        assert_eq!(cpu_list_count(""), None);
    }

    #[test]
    fn usage_is_percent_of_quota() {
        let a = CgroupCpu::default();
        let b = CgroupCpu {
            user_usec: 500_000,
            system_usec: 250_000,
        };
        // 0.75 s of CPU in 1 s on a 0.5-core quota = 150 %.
        let got = usage(a, b, 1_000_000, 0.5).expect("usage");
        assert_eq!(got, u(100.0, 50.0));
        assert!(usage(b, a, 1_000_000, 1.0).is_none());
        assert!(usage(a, b, 0, 1.0).is_none());
    }

    #[test]
    fn each_rule_fires() {
        let t = Thresholds::default();
        assert!(
            decide(Some(u(10.0, 0.0)), u(80.0, 0.0), t).is_some(),
            "user"
        );
        assert!(decide(Some(u(0.0, 10.0)), u(0.0, 50.0), t).is_some(), "sys");
        assert!(
            decide(Some(u(20.0, 10.0)), u(60.0, 35.0), t).is_some(),
            "total"
        );
    }

    #[test]
    fn does_not_fire_when_steady_or_first() {
        let t = Thresholds::default();
        assert!(decide(Some(u(70.0, 25.0)), u(80.0, 15.0), t).is_none());
        assert!(decide(None, u(100.0, 0.0), t).is_none());
    }

    #[test]
    fn picks_highest_score() {
        let t = Thresholds::default();
        let a = decide(Some(u(0.0, 0.0)), u(80.0, 0.0), t).expect("a");
        let b = decide(Some(u(0.0, 0.0)), u(99.0, 0.0), t).expect("b");
        assert_eq!(pick([("a", a), ("b", b)]).map(|p| p.0), Some("b"));
    }
}
