//! Output helpers that reproduce the docker CLI's formatting: sizes as
//! go-units prints them, "2 hours ago" durations, Go's `time.Time` text,
//! tab-aligned tables and JSON as Go encodes it.

pub mod json;
pub mod list;
pub mod table;

use chrono::{DateTime, Local, Offset, TimeZone};

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn scale(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units `HumanSizeWithPrecision`: decimal units, `%.{precision}g`.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let (size, unit) = scale(size, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", go_g(size, precision))
}

/// go-units `HumanSize` ("1.982MB"), used for totals and progress counts.
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// go-units `BytesSize` ("23.54GiB"), used for memory.
pub fn bytes_size(size: f64) -> String {
    let (size, unit) = scale(size, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", go_g(size, 4))
}

/// Go's `%.{prec}g`: shortest of `%e`/`%f` by exponent, trailing zeros dropped.
pub fn go_g(x: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if x == 0.0 {
        return "0".to_string();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{:.*e}", prec - 1, x);
    let (mantissa, exp) = sci.split_once('e').expect("exponent format");
    let exp: i32 = exp.parse().expect("exponent digits");
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_fraction(mantissa), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units `HumanDuration` for a duration in seconds ("About an hour").
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
}

/// "2 hours ago" for a Unix timestamp, as `docker images` shows CREATED.
pub fn since(unix: i64, now: DateTime<chrono::Utc>) -> String {
    let secs = (now.timestamp_millis() - unix * 1000) as f64 / 1000.0;
    format!("{} ago", human_duration(secs))
}

/// Go's `time.Unix(secs, 0).String()` in local time: "2026-11-29 03:21:27 +0000 UTC".
pub fn go_time_string(unix: i64) -> String {
    match Local.timestamp_opt(unix, 0).single() {
        Some(t) => go_time_text(&t),
        None => unix.to_string(),
    }
}

fn go_time_text<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let offset = t.offset().fix().local_minus_utc();
    // Go prints the zone's abbreviation; chrono has none, so UTC is named and
    // other zones repeat the numeric offset as Go does for unnamed zones.
    let numeric = t.format("%z").to_string();
    let zone = if offset == 0 {
        "UTC".to_string()
    } else {
        numeric.clone()
    };
    format!("{} {numeric} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Docker's `stringid.TruncateID`: drop the algorithm, keep 12 hex digits.
pub fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

/// Docker's `formatter.Ellipsis`: at most `max` columns, the last one "…".
pub fn ellipsis(s: &str, max: usize) -> String {
    use unicode_width::UnicodeWidthChar as _;
    if max == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max == 1 {
        return chars.first().map(|c| c.to_string()).unwrap_or_default();
    }
    if s.len() == chars.len() {
        if s.len() <= max {
            return s.to_string();
        }
        return chars[..max - 1].iter().collect::<String>() + "…";
    }
    let mut widths = Vec::with_capacity(chars.len());
    let mut total = 0;
    for c in &chars {
        total += c.width().unwrap_or(0);
        widths.push(total);
    }
    if total <= max {
        return s.to_string();
    }
    for i in 0..widths.len().saturating_sub(1) {
        if widths[i] < max && widths[i + 1] >= max {
            return chars[..=i].iter().collect::<String>() + "…";
        }
    }
    s.to_string()
}

/// Go's `strconv.Quote`: printable characters as they are, the rest
/// escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `sortorder.NaturalLess`: runs of digits compare by value.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = std::str::from_utf8(&a[si..i])
                .unwrap_or("0")
                .trim_start_matches('0');
            let nb = std::str::from_utf8(&b[sj..j])
                .unwrap_or("0")
                .trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
            continue;
        }
        if a[i] != b[j] {
            return a[i].cmp(&b[j]);
        }
        i += 1;
        j += 1;
    }
    (a.len() - i).cmp(&(b.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size_with_precision(1_982_291.0, 3), "1.98MB");
        assert_eq!(human_size(1_982_291.0), "1.982MB");
        assert_eq!(human_size_with_precision(4_260_000.0, 3), "4.26MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(36_445.0), "36.45kB");
        assert_eq!(human_size(1_064_565.0), "1.065MB");
        // Go's %g switches to an exponent when rounding reaches the precision.
        assert_eq!(human_size_with_precision(999_500.0, 3), "1e+03kB");
        assert_eq!(human_size_with_precision(123_456_789_012.0, 3), "123GB");
        assert_eq!(bytes_size(25_275_965_440.0), "23.54GiB");
        assert_eq!(bytes_size(512.0), "512B");
    }

    #[test]
    fn go_g_formats() {
        assert_eq!(go_g(1.5, 3), "1.5");
        assert_eq!(go_g(2.0, 3), "2");
        assert_eq!(go_g(0.00001234, 3), "1.23e-05");
        assert_eq!(go_g(123.456, 4), "123.5");
    }

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0.4), "Less than a second");
        assert_eq!(human_duration(-3.0), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(33.0), "33 seconds");
        assert_eq!(human_duration(60.0), "About a minute");
        assert_eq!(human_duration(119.0), "About a minute");
        assert_eq!(human_duration(120.0), "2 minutes");
        assert_eq!(human_duration(3599.0), "59 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5400.0), "2 hours");
        assert_eq!(human_duration(47.0 * 3600.0), "47 hours");
        assert_eq!(human_duration(48.0 * 3600.0), "2 days");
        assert_eq!(human_duration(15.0 * 86400.0), "2 weeks");
        assert_eq!(human_duration(70.0 * 86400.0), "2 months");
        assert_eq!(human_duration(800.0 * 86400.0), "2 years");
        let now = Utc.timestamp_opt(10_000, 0).unwrap();
        assert_eq!(since(10_000 - 7200, now), "2 hours ago");
    }

    #[test]
    fn go_time_text_in_utc() {
        let t = Utc.timestamp_opt(1_795_922_487, 0).unwrap();
        assert_eq!(go_time_text(&t), "2026-11-29 03:21:27 +0000 UTC");
        let east = chrono::FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            go_time_text(&t.with_timezone(&east)),
            "2026-11-29 04:21:27 +0100 +0100"
        );
    }

    #[test]
    fn ellipsis_and_quote_like_docker() {
        assert_eq!(
            ellipsis("sh -c 'echo a; echo b >&2; echo c'", 20),
            "sh -c 'echo a; echo…"
        );
        assert_eq!(ellipsis("sleep 1000", 20), "sleep 1000");
        assert_eq!(ellipsis("日本語日本語日本語日本語", 7), "日本語…");
        assert_eq!(
            go_quote("sh -c 'echo \"x\"'\n"),
            r#""sh -c 'echo \"x\"'\n""#
        );
        assert_eq!(go_quote("a…\u{1}"), "\"a…\\x01\"");
    }

    #[test]
    fn short_ids() {
        assert_eq!(
            short_id("sha256:a3ebfb9f84a77a02a94420d9eaa006b6"),
            "a3ebfb9f84a7"
        );
        assert_eq!(short_id("a3ebfb9f84a77a02"), "a3ebfb9f84a7");
        assert_eq!(short_id("abc"), "abc");
    }
}
