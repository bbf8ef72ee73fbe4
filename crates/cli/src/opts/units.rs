//! Flag values parsed as the docker CLI parses them, with Go's messages:
//! go-units sizes, `big.Rat` CPU counts, `time.ParseDuration`, `strconv`.

/// go-units `RAMInBytes` ("64m", "1.5g", "512"; binary multiples).
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: '{s}'"));
    };
    let (num, suffix) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size = parse_float(num)?;
    if size < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    if suffix.is_empty() {
        return Ok(size as i64);
    }
    let bad = || Err(format!("invalid suffix: '{suffix}'"));
    if suffix.len() > 3 {
        return bad();
    }
    let sfx = suffix.to_lowercase();
    let first = sfx.as_bytes()[0];
    if first == b'b' {
        return if sfx.len() > 1 {
            bad()
        } else {
            Ok(size as i64)
        };
    }
    let mul: i64 = match first {
        b'k' => 1 << 10,
        b'm' => 1 << 20,
        b'g' => 1 << 30,
        b't' => 1 << 40,
        b'p' => 1 << 50,
        _ => return bad(),
    };
    match sfx.len() {
        2 if &sfx[1..] != "b" => return bad(),
        3 if &sfx[1..] != "ib" => return bad(),
        _ => {}
    }
    Ok((size * mul as f64) as i64)
}

/// Go's `strconv.ParseFloat` on what it accepts here.
fn parse_float(s: &str) -> Result<f64, String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    match s.parse::<f64>() {
        Ok(v) if ok => Ok(v),
        _ => Err(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
    }
}

/// Docker's `opts.ParseCPUs`: a decimal or fraction, in units of 1e-9 CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {s} as a rational number");
    let (num, den) = parse_rational(s).ok_or_else(not_rational)?;
    let scaled = num.checked_mul(1_000_000_000).ok_or_else(not_rational)?;
    if den == 0 {
        return Err(not_rational());
    }
    if scaled % den != 0 {
        return Err("value is too precise".into());
    }
    Ok((scaled / den) as i64)
}

/// `big.Rat.SetString` for "a/b", "1.5", "-2", "1e3".
fn parse_rational(s: &str) -> Option<(i128, i128)> {
    if let Some((a, b)) = s.split_once('/') {
        let a: i128 = a.parse().ok()?;
        let b: i128 = b.parse().ok()?;
        if b == 0 {
            return None;
        }
        return Some((a, b));
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut num: i128 = format!("{int}{frac}").parse().ok()?;
    let mut den: i128 = 10i128.checked_pow(frac.len() as u32)?;
    if exp > 0 {
        num = num.checked_mul(10i128.checked_pow(exp as u32)?)?;
    } else if exp < 0 {
        den = den.checked_mul(10i128.checked_pow(exp.unsigned_abs())?)?;
    }
    Some((if neg { -num } else { num }, den))
}

/// Go's `time.ParseDuration`, in nanoseconds (shared with the engine's
/// filters).
pub use servin_api::parse_go_duration as parse_duration;

/// Go's `strconv.ParseInt(s, 0, bits)` as pflag's int flags use it.
pub fn parse_int(s: &str, bits: u32) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {s:?}: invalid syntax");
    let range = || format!("strconv.ParseInt: parsing {s:?}: value out of range");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let body = body.replace('_', "");
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, h.to_string())
    } else if let Some(b) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, b.to_string())
    } else if let Some(o) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, o.to_string())
    } else if body.len() > 1 && body.starts_with('0') {
        (8, body[1..].to_string())
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    let magnitude = u128::from_str_radix(&digits, radix).map_err(|_| range())?;
    let limit = 1u128 << (bits - 1);
    if (!neg && magnitude >= limit) || (neg && magnitude > limit) {
        return Err(range());
    }
    let v = magnitude as i128;
    Ok(if neg { -v } else { v } as i64)
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("64M"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Ok(1_610_612_736));
        assert_eq!(ram_in_bytes("512"), Ok(512));
        assert_eq!(ram_in_bytes("10kb"), Ok(10 << 10));
        assert_eq!(ram_in_bytes("10KiB"), Ok(10 << 10));
        assert_eq!(ram_in_bytes("32 MB"), Ok(32 << 20));
        assert_eq!(ram_in_bytes("3b"), Ok(3));
        assert_eq!(ram_in_bytes("lots"), Err("invalid size: 'lots'".into()));
        assert_eq!(ram_in_bytes("-1"), Err("invalid size: '-1'".into()));
        assert_eq!(ram_in_bytes("5x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("5mbb"), Err("invalid suffix: 'mbb'".into()));
        assert_eq!(ram_in_bytes("5mx"), Err("invalid suffix: 'mx'".into()));
        assert_eq!(
            ram_in_bytes("1x2m"),
            Err("strconv.ParseFloat: parsing \"1x2\": invalid syntax".into())
        );
    }

    #[test]
    fn cpus_like_docker() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        assert_eq!(parse_cpus("1e-3"), Ok(1_000_000));
        assert_eq!(
            parse_cpus("abc"),
            Err("failed to parse abc as a rational number".into())
        );
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
    }

    #[test]
    fn ints_like_strconv() {
        assert_eq!(parse_int("42", 64), Ok(42));
        assert_eq!(parse_int("-1", 64), Ok(-1));
        assert_eq!(parse_int("0x10", 64), Ok(16));
        assert_eq!(
            parse_int("x", 64),
            Err("strconv.ParseInt: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            parse_int("99999999999", 32),
            Err("strconv.ParseInt: parsing \"99999999999\": value out of range".into())
        );
        assert_eq!(parse_bool("false"), Ok(false));
        assert!(parse_bool("nah").is_err());
    }
}
