//! `--since`/`--until` values as the docker client sends them (the API's
//! `GetTimestamp`): durations back from now, RFC 3339 dates (local time
//! when they carry no zone), or Unix timestamps passed through.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset as _, TimeZone as _, Utc};

/// `value` as the `seconds[.nanoseconds]` string the API takes, relative to
/// `now` (whose offset is the local zone).
pub fn get_timestamp(value: &str, now: DateTime<FixedOffset>) -> Result<String, String> {
    if value != "0" {
        if let Ok(ns) = crate::opts::units::parse_duration(value) {
            let t = now.timestamp_nanos_opt().unwrap_or(0) - ns;
            return Ok(t.div_euclid(1_000_000_000).to_string());
        }
    }
    let in_location = !value.contains(['z', 'Z', '+']) && value.matches('-').count() != 3;
    let parsed = if in_location {
        parse_local(value).and_then(|naive| {
            now.offset()
                .fix()
                .from_local_datetime(&naive)
                .single()
                .map(|t| t.with_timezone(&Utc))
        })
    } else {
        parse_zoned(value)
    };
    match parsed {
        Some(t) => Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        )),
        None if value.contains('-') => Err(format!("parsing time {value:?}: cannot parse")),
        None => {
            let (s, n) = value.split_once('.').unwrap_or((value, "0"));
            if s.parse::<i64>().is_ok() && n.parse::<i64>().is_ok() {
                Ok(value.to_string())
            } else {
                Err(format!(
                    "failed to parse value as time or duration: {value:?}"
                ))
            }
        }
    }
}

fn parse_local(value: &str) -> Option<NaiveDateTime> {
    if !value.contains('T') {
        return NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0));
    }
    let padded = match value.matches(':').count() {
        0 => format!("{value}:00:00"),
        1 => format!("{value}:00"),
        _ => value.to_string(),
    };
    NaiveDateTime::parse_from_str(&padded, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

fn parse_zoned(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    // Shorter forms: a date with a zone, or hours (and minutes) with one.
    let split = value
        .rfind(['Z', 'z', '+'])
        .or_else(|| value.rfind('-').filter(|&i| i > 10))?;
    let (local, zone) = value.split_at(split);
    let offset = if zone.eq_ignore_ascii_case("z") {
        FixedOffset::east_opt(0)?
    } else {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        FixedOffset::east_opt(sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60))?
    };
    let naive = parse_local(local)?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-01-02T10:00:00+00:00").unwrap()
    }

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(get_timestamp("10m", now()).unwrap(), "1767347400");
        assert_eq!(get_timestamp("1h30m", now()).unwrap(), "1767342600");
    }

    #[test]
    fn dates_and_unix_times() {
        assert_eq!(
            get_timestamp("2026-01-02T09:00:00Z", now()).unwrap(),
            "1767344400.000000000"
        );
        assert_eq!(
            get_timestamp("2026-01-02T09:00:00.5+01:00", now()).unwrap(),
            "1767340800.500000000"
        );
        assert_eq!(
            get_timestamp("2026-01-02", now()).unwrap(),
            "1767312000.000000000"
        );
        assert_eq!(
            get_timestamp("2026-01-02T09", now()).unwrap(),
            "1767344400.000000000"
        );
        assert_eq!(get_timestamp("1767344400", now()).unwrap(), "1767344400");
        assert_eq!(get_timestamp("0", now()).unwrap(), "0");
        assert_eq!(
            get_timestamp("soon", now()).unwrap_err(),
            "failed to parse value as time or duration: \"soon\""
        );
    }
}
