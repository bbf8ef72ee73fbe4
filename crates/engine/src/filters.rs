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
}
