use super::*;
use crate::autotracing::cpuidle::Usage;
use crate::probes::common::autocapture::CaptureOutcome;

#[test]
fn document_carries_upstream_fields_and_why_there_is_no_flame_graph() {
    let t = CpuidleConfig::default().thresholds();
    let prev = Usage {
        user: 5.0,
        system: 1.0,
        total: 6.0,
    };
    let cur = Usage {
        user: 90.0,
        system: 5.0,
        total: 95.0,
    };
    let fire = decide(Some(prev), cur, t).expect("fires on the user rule");
    let flame = FlameFields::from_outcome(&CaptureOutcome::NotRun("profile off".into()));
    let data = serde_json::to_value(CpuidleData::new(&fire, 0.5, flame)).expect("json");
    for key in [
        "user_percent",
        "user_percent_threshold",
        "user_percent_delta",
        "user_percent_delta_threshold",
        "system_percent",
        "system_percent_threshold",
        "system_percent_delta",
        "system_percent_delta_threshold",
        "total_percent",
        "total_percent_threshold",
        "total_percent_delta",
        "total_percent_delta_threshold",
        "flamedata",
        "folded_stacks",
    ] {
        assert!(data.get(key).is_some(), "{key} missing: {data:#}");
    }
    assert_eq!(data["user_percent"], 90.0);
    assert_eq!(data["user_percent_delta"], 85.0);
    assert_eq!(data["user_percent_threshold"], 75.0);
    assert_eq!(data["total_percent_delta_threshold"], 55.0);
    assert_eq!(data["cpu_cores"], 0.5);
    assert_eq!(data["capture_error"], "profile off");
}

#[test]
fn thresholds_are_checked() {
    let bad = CpuidleConfig {
        total_percent_delta: -1.0,
        ..Default::default()
    };
    assert!(validate(&bad).unwrap_err().contains("total_percent_delta"));
    assert!(validate(&CpuidleConfig::default()).is_ok());
}
