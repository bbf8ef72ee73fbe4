//! Byte sizes as users write them in `vm config` (`2GiB`, `512M`, `20G`).
//!
//! Binary units throughout, as QEMU and Docker's `--memory` read them: `G`,
//! `GB` and `GiB` all mean 2^30 bytes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written and read in the user's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

impl ByteSize {
    /// Parses `123`, `512M`, `512MiB`, `2G`, `2 GiB`, `1.5GiB` (case-insensitive).
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let invalid = || {
            format!(
                "invalid size {s:?}: expected a number with an optional unit (e.g. 2GiB, 512MiB)"
            )
        };
        if number.is_empty() {
            return Err(invalid());
        }
        let mult = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => KIB,
            "m" | "mb" | "mib" => MIB,
            "g" | "gb" | "gib" => GIB,
            "t" | "tb" | "tib" => TIB,
            _ => return Err(invalid()),
        };
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let bytes = value * mult as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(invalid());
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly (`2GiB`,
    /// `1536MiB`), so a value written back reads the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if b >= unit && b.is_multiple_of(unit) {
                return write!(f, "{}{name}", b / unit);
            }
        }
        write!(f, "{b}B")
    }
}

/// Human-readable with one decimal, for status output (`1.3GiB`).
pub fn human(bytes: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit {
            return format!("{:.1}{name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes}B")
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_write() {
        assert_eq!(ByteSize::parse("4GiB"), Ok(ByteSize(4 * GIB)));
        assert_eq!(ByteSize::parse("4g"), Ok(ByteSize(4 * GIB)));
        assert_eq!(ByteSize::parse("4 GB"), Ok(ByteSize(4 * GIB)));
        assert_eq!(ByteSize::parse("512MiB"), Ok(ByteSize(512 * MIB)));
        assert_eq!(ByteSize::parse("1.5G"), Ok(ByteSize(3 * GIB / 2)));
        assert_eq!(ByteSize::parse("1024"), Ok(ByteSize(1024)));
        for bad in ["banana", "", "GiB", "4 parsecs", "1.2.3G", "-1G"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn prints_the_exact_unit() {
        assert_eq!(ByteSize(2 * GIB).to_string(), "2GiB");
        assert_eq!(ByteSize(1536 * MIB).to_string(), "1536MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
        assert_eq!(human(3 * GIB / 2), "1.5GiB");
    }
}
