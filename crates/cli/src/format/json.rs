//! JSON the way the docker CLI writes it: an order-keeping value model for
//! templates, Go's `encoding/json` escaping, and `json.Indent`/`json.Compact`
//! over the daemon's raw bytes (so key order and number text survive).

use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A value a template can walk. Objects keep the daemon's key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// A `null` whose Go type is known from its field name: prints as `[]`
    /// or `map[]` like a nil slice or map of Docker's typed structs.
    TypedNull(&'static str),
    /// What Go's templates print for a missing map key: `<no value>`.
    Missing,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
    /// One of the CLI's own formatter contexts (a Go struct): unknown fields
    /// are errors naming `type_name`.
    Struct(Box<StructValue>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StructValue {
    pub type_name: &'static str,
    pub fields: Vec<(String, Value)>,
    /// Render `{{json .}}` like docker's formatter contexts (`MarshalJSON`
    /// into a map: sorted keys, HTML-escaped) rather than in field order.
    pub sorted_json: bool,
    /// What `{{json .}}` encodes instead of the fields, for Go structs whose
    /// JSON tags differ from their field names (`events.Message`).
    pub json: Option<Box<Value>>,
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    pub fn int(n: i64) -> Self {
        Value::Number(n.into())
    }

    pub fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Self {
        Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// Parses JSON text, keeping object key order.
    pub fn from_json(raw: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(raw)
    }

    /// A field of an object or struct, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let fields = match self {
            Value::Object(f) => f,
            Value::Struct(s) => &s.fields,
            _ => return None,
        };
        fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string field, or "" when absent or not a string.
    pub fn get_str(&self, key: &str) -> &str {
        match self.get(key) {
            Some(Value::String(s)) => s,
            _ => "",
        }
    }

    /// Sets (or appends) a field of an object.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Object(fields) = self {
            match fields.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => fields.push((key.to_string(), value)),
            }
        }
    }

    /// `encoding/json` text of this value (`escape_html` as `SetEscapeHTML`).
    pub fn to_go_json(&self, escape_html: bool) -> String {
        let mut out = String::new();
        encode(self, escape_html, &mut out);
        out
    }
}

fn encode(v: &Value, escape_html: bool, out: &mut String) {
    match v {
        Value::Null | Value::TypedNull(_) | Value::Missing => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => quote_into(s, escape_html, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(item, escape_html, out);
            }
            out.push(']');
        }
        Value::Object(fields) => encode_fields(fields.iter(), escape_html, out),
        Value::Struct(s) if s.json.is_some() => {
            if let Some(json) = &s.json {
                encode(json, escape_html, out);
            }
        }
        Value::Struct(s) if s.sorted_json => {
            let mut fields: Vec<_> = s.fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            encode_fields(fields.into_iter(), true, out);
        }
        Value::Struct(s) => encode_fields(s.fields.iter(), escape_html, out),
    }
}

fn encode_fields<'a>(
    fields: impl Iterator<Item = &'a (String, Value)>,
    escape_html: bool,
    out: &mut String,
) {
    out.push('{');
    for (i, (k, v)) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        quote_into(k, escape_html, out);
        out.push(':');
        encode(v, escape_html, out);
    }
    out.push('}');
}

/// A JSON string literal with Go's escaping rules.
pub fn quote_into(s: &str, escape_html: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Indent(dst, src, "", indent)`: re-indents raw JSON without
/// touching strings or numbers; `[]` and `{}` stay on one line.
pub fn indent(raw: &[u8], indent: &str) -> String {
    let mut out = Vec::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut pending_newline = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for &c in raw {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if pending_newline && c != b']' && c != b'}' {
            pending_newline = false;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                depth += 1;
                pending_newline = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if pending_newline {
                    pending_newline = false;
                } else {
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => {
                out.push(c);
                out.push(b' ');
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `json.Compact`: drops insignificant whitespace.
pub fn compact(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for &c in raw {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == b'"';
            out.push(c);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Deserialize::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            fields.push((k, v));
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_encodes_like_go() {
        let v = Value::from_json(br#"{"b":1,"a":[true,null,"x<y"],"c":{}}"#).unwrap();
        assert_eq!(
            v.to_go_json(false),
            r#"{"b":1,"a":[true,null,"x<y"],"c":{}}"#
        );
        assert_eq!(
            v.to_go_json(true),
            r#"{"b":1,"a":[true,null,"x\u003cy"],"c":{}}"#
        );
    }

    #[test]
    fn sorted_struct_json() {
        let v = Value::Struct(Box::new(StructValue {
            type_name: "*formatter.imageContext",
            fields: vec![
                ("Tag".into(), Value::str("<none>")),
                ("ID".into(), Value::str("abc")),
            ],
            sorted_json: true,
            json: None,
        }));
        assert_eq!(
            v.to_go_json(false),
            r#"{"ID":"abc","Tag":"\u003cnone\u003e"}"#
        );
    }

    #[test]
    fn escapes_control_characters() {
        let mut s = String::new();
        quote_into("a\"b\\c\n\u{1}\u{2028}", false, &mut s);
        assert_eq!(s, r#""a\"b\\c\n\u0001\u2028""#);
    }

    #[test]
    fn indent_like_go() {
        let raw = br#"[{"Id":"x","RepoDigests":[],"Config":{"Env":null,"Cmd":["/bin/sh"]},"E":{}, "S":"a,b:{["}]"#;
        let want = "[\n    {\n        \"Id\": \"x\",\n        \"RepoDigests\": [],\n        \"Config\": {\n            \"Env\": null,\n            \"Cmd\": [\n                \"/bin/sh\"\n            ]\n        },\n        \"E\": {},\n        \"S\": \"a,b:{[\"\n    }\n]";
        assert_eq!(indent(raw, "    "), want);
    }

    #[test]
    fn compact_like_go() {
        assert_eq!(
            compact(b"{ \"a\" : [ 1, \"x y\" ] }\n"),
            r#"{"a":[1,"x y"]}"#
        );
    }
}
