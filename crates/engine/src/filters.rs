//! Docker's `filters` query parameter: `{"key":["value",…]}`, or the older
//! `{"key":{"value":true}}` form.

use serde_json::Value;
use servin_api::Error;

#[derive(Debug, Clone, Default)]
pub struct Filters(Value);

impl Filters {
    /// Parses the parameter; empty means no filter.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.trim().is_empty() {
            return Ok(Self(Value::Object(Default::default())));
        }
        let v: Value =
            serde_json::from_str(s).map_err(|e| Error::invalid(format!("invalid filter: {e}")))?;
        if !v.is_object() {
            return Err(Error::invalid("invalid filter: not an object"));
        }
        Ok(Self(v))
    }

    /// The values given for `key`.
    pub fn values(&self, key: &str) -> Vec<String> {
        match &self.0[key] {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The keys present.
    pub fn keys(&self) -> Vec<String> {
        self.0
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Fails on the first key not in `accepted`, with Docker's message.
    pub fn accept_only(&self, accepted: &[&str]) -> Result<(), Error> {
        match self
            .keys()
            .into_iter()
            .find(|k| !accepted.contains(&k.as_str()))
        {
            Some(k) => Err(Error::invalid(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// Whether `labels` (a JSON object of strings) passes the `label` and
    /// `label!` filters as Docker's prune applies them: every `label`
    /// (`KEY` or `KEY=VALUE`) must match, and the object is excluded when
    /// every `label!` matches.
    pub fn match_labels(&self, labels: &Value) -> bool {
        let matches = |spec: &str| match spec.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => labels.get(spec).is_some_and(|v| !v.is_null()),
        };
        if !self.values("label").iter().all(|l| matches(l)) {
            return false;
        }
        let not = self.values("label!");
        not.is_empty() || !not.iter().all(|l| matches(l))
    }

    /// The `until` filter as a point in time: Unix seconds (`1700000000`,
    /// `1700000000.5`), an RFC 3339 time or date, or a Go duration before
    /// `now` (`10m`, `1h30m`). `None` when absent; more than one is an error.
    pub fn until(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
        let values = self.values("until");
        match values.as_slice() {
            [] => Ok(None),
            [v] => parse_time(v, now).map(Some).ok_or_else(|| {
                Error::invalid(format!("failed to parse value as time or duration: {v:?}"))
            }),
            _ => Err(Error::invalid("more than one until filter specified")),
        }
    }
}

/// A time the way Docker's filters take one (see [`Filters::until`]).
fn parse_time(
    s: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    if let Some(d) = go_duration(s) {
        return now.checked_sub_signed(d);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Unix seconds with an optional fraction.
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let nanos = format!("{frac:0<9}").parse::<u32>().ok()?;
        return DateTime::from_timestamp(secs.parse().ok()?, nanos);
    }
    // Without a zone Docker reads the daemon's local time; ours is UTC.
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Go's `time.ParseDuration`, as a time span.
fn go_duration(s: &str) -> Option<chrono::TimeDelta> {
    servin_api::parse_go_duration(s)
        .ok()
        .map(chrono::TimeDelta::nanoseconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms() {
        let f = Filters::parse(r#"{"a":["x","y"],"b":{"z":true}}"#).unwrap();
        assert_eq!(f.values("a"), ["x", "y"]);
        assert_eq!(f.values("b"), ["z"]);
        assert!(f.values("c").is_empty());
        assert!(Filters::parse("{not json").is_err());
        assert!(Filters::parse("").unwrap().keys().is_empty());
    }

    #[test]
    fn labels_match_as_docker_prune_does() {
        let labels = serde_json::json!({"a": "1", "b": ""});
        let f = |s: &str| Filters::parse(s).unwrap().match_labels(&labels);
        assert!(f("{}"));
        assert!(f(r#"{"label":["a"]}"#));
        assert!(f(r#"{"label":["a=1","b"]}"#));
        assert!(!f(r#"{"label":["none"]}"#));
        assert!(!f(r#"{"label":["a=2"]}"#));
        assert!(!f(r#"{"label":["a","none"]}"#));
        assert!(!f(r#"{"label!":["a"]}"#));
        assert!(f(r#"{"label!":["a=2"]}"#));
        assert!(f(r#"{"label!":["none"]}"#));
        assert!(!Filters::parse(r#"{"label":["a"]}"#)
            .unwrap()
            .match_labels(&Value::Null));
    }

    #[test]
    fn until_takes_docker_time_forms() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let until = |s: &str| {
            Filters::parse(&serde_json::json!({ "until": [s] }).to_string())
                .unwrap()
                .until(now)
        };
        let ts = |s: &str| until(s).unwrap().unwrap().timestamp_millis();
        assert_eq!(ts("1h30m"), 1_700_000_000_000 - 5_400_000);
        assert_eq!(ts("1.5s"), 1_700_000_000_000 - 1_500);
        assert_eq!(ts("1699999000"), 1_699_999_000_000);
        assert_eq!(ts("1699999000.25"), 1_699_999_000_250);
        assert_eq!(ts("2023-11-14T22:13:20Z"), 1_700_000_000_000);
        assert_eq!(ts("2023-11-14T23:13:20+01:00"), 1_700_000_000_000);
        assert_eq!(ts("2023-11-14"), 1_699_920_000_000);
        assert_eq!(
            until("xyz").unwrap_err().message,
            "failed to parse value as time or duration: \"xyz\""
        );
        assert!(until("10x").is_err());
        let two = Filters::parse(r#"{"until":["1h","2h"]}"#).unwrap();
        assert_eq!(
            two.until(now).unwrap_err().message,
            "more than one until filter specified"
        );
        assert!(Filters::parse("{}").unwrap().until(now).unwrap().is_none());
    }
}
