use super::*;

#[test]
fn parses_real_proc_loadavg() {
    let load = parse_loadavg("0.52 0.58 0.59 2/412 12345\n").unwrap();
    assert_eq!(
        load,
        LoadAverage {
            load1: 0.52,
            load5: 0.58,
            load15: 0.59
        }
    );
}

#[test]
fn truncated_file_names_missing_field() {
    assert_eq!(
        parse_loadavg("0.52 0.58").unwrap_err(),
        "missing load15 field"
    );
    assert_eq!(parse_loadavg("").unwrap_err(), "missing load1 field");
}

#[test]
fn garbage_names_field_and_value() {
    assert_eq!(
        parse_loadavg("0.1 abc 0.3").unwrap_err(),
        "load5 `abc` is not a number"
    );
    assert_eq!(
        parse_loadavg("-1 0 0").unwrap_err(),
        "load1 `-1` is out of range"
    );
    assert!(parse_loadavg("NaN 0 0").is_err());
}
