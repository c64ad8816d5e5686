//! The document's times: RFC 3339 (`uploaded_time`) and upstream's Go layout
//! `2006-01-02 15:04:05.000 -0700` (`time`, `tracer_time`), written and read.

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-25T01:02:03.000000004Z`.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Upstream's document time layout (Go `2006-01-02 15:04:05.000 -0700`), in UTC:
/// `2026-12-03 13:21:23.123 +0000`. Milliseconds are truncated, as Go's formatting does.
pub fn go_time(time: std::time::SystemTime) -> String {
    let text = rfc3339(time);
    // `YYYY-MM-DDTHH:MM:SS.mmm` of the RFC 3339 text, with a space for the `T`.
    format!("{} {} +0000", &text[..10], &text[11..23])
}

/// Reads a document's `time` / `tracer_time`: upstream's layout (`2026-12-03 13:21:23.123
/// +0000`, any offset, fraction optional) or RFC 3339 (what earlier versions stored).
pub fn parse_document_time(text: &str) -> Result<std::time::SystemTime, String> {
    let s = text.trim();
    // Go layout: the offset is ` +hhmm` after the seconds; rewrite it as RFC 3339's `+hh:mm`.
    if let Some((clock, offset)) = s.rsplit_once(' ') {
        let bytes = offset.as_bytes();
        if clock.len() >= 19
            && bytes.len() == 5
            && matches!(bytes[0], b'+' | b'-')
            && bytes[1..].iter().all(u8::is_ascii_digit)
        {
            let rfc = format!("{clock}{}:{}", &offset[..3], &offset[3..]);
            return parse_rfc3339(&rfc).map_err(|e| {
                format!("bad time `{s}`: {e} (expected e.g. 2026-12-03 13:21:23.123 +0000)")
            });
        }
    }
    parse_rfc3339(s).map_err(|e| {
        format!("bad time `{s}`: {e} (expected e.g. 2026-12-03 13:21:23.123 +0000 or RFC 3339)")
    })
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm, the inverse of the above).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time: `2026-11-23T01:02:03Z`, `2026-11-23T09:02:03.5+08:00`. `t` or a
/// space may replace `T` and `z` may replace `Z`; an offset written ` 08:00` is read as `+08:00`
/// (a `+` that a URL query decoded to a space).
pub fn parse_rfc3339(text: &str) -> Result<std::time::SystemTime, String> {
    let s = text.trim();
    let field = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        s.get(range)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("bad {what}; expected e.g. 2026-11-23T01:02:03Z"))
    };
    let separator = |at: usize, allowed: &[u8]| {
        s.as_bytes()
            .get(at)
            .is_some_and(|b| allowed.contains(b))
            .then_some(())
            .ok_or_else(|| "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset".to_string())
    };
    let (year, month, day) = (
        field(0..4, "year")?,
        field(5..7, "month")?,
        field(8..10, "day")?,
    );
    separator(4, b"-")?;
    separator(7, b"-")?;
    separator(10, b"Tt ")?;
    let (hour, minute, second) = (
        field(11..13, "hour")?,
        field(14..16, "minute")?,
        field(17..19, "second")?,
    );
    separator(13, b":")?;
    separator(16, b":")?;
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let max_day = if month == 2 && leap {
        29
    } else {
        *month_days
            .get((month - 1).clamp(0, 11) as usize)
            .unwrap_or(&31)
    };
    if !(1..=12).contains(&month) || !(1..=max_day).contains(&day) {
        return Err(format!("no such date {year:04}-{month:02}-{day:02}"));
    }
    // 60 is a leap second, read as the last second of the minute.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("no such time {hour:02}:{minute:02}:{second:02}"));
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err("expected digits after the decimal point".to_string());
        }
        let digits = &after_dot[..len.min(9)];
        nanos = format!("{digits:0<9}").parse().unwrap_or(0);
        rest = &after_dot[len..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+' | b' ') => 1,
                Some(b'-') => -1,
                _ => return Err("expected Z or an offset such as +08:00 after the time".into()),
            };
            let offset = &rest[1..];
            let hours = offset.get(0..2).and_then(|h| h.parse::<i64>().ok());
            let minutes = offset.get(3..5).and_then(|m| m.parse::<i64>().ok());
            match (hours, minutes, offset.len(), offset.as_bytes().get(2)) {
                (Some(h), Some(m), 5, Some(b':')) if h < 24 && m < 60 => sign * (h * 3600 + m * 60),
                _ => return Err(format!("bad offset `{rest}`; expected e.g. +08:00")),
            }
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset_secs;
    let secs =
        u64::try_from(secs).map_err(|_| "times before 1970 are not supported".to_string())?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}
