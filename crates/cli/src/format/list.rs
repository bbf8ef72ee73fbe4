//! `--format` for list commands, as docker's `formatter.Context.Write`:
//! `table …` (aligned, with a header), `json` (`{{json .}}`), or a raw
//! template printed once per row.

use crate::format::json::Value;
use crate::format::table::TABLE;
use crate::template::{MissingKey, Options, Template};

pub const TABLE_KEY: &str = "table";
pub const JSON_KEY: &str = "json";

/// Renders `rows` with `format`; `header` maps field names to column titles.
/// Errors are docker's "template parsing error: …".
pub fn render(format: &str, rows: &[Value], header: &Value) -> Result<String, String> {
    let is_table = format.starts_with(TABLE_KEY);
    let body = if is_table {
        &format[TABLE_KEY.len()..]
    } else if format == JSON_KEY {
        "{{json .}}"
    } else {
        format
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = Template::parse("", &body).map_err(|e| format!("template parsing error: {e}"))?;
    let mut out = String::new();
    for row in rows {
        let line = tmpl
            .execute(row, Options::default())
            .map_err(|e| format!("template parsing error: {e}"))?;
        out.push_str(&line);
        out.push('\n');
    }
    if !is_table {
        return Ok(out);
    }
    let opts = Options {
        missing: MissingKey::Empty,
        header: true,
    };
    let mut text = tmpl.execute(header, opts).unwrap_or_default();
    text.push('\n');
    text.push_str(&out);
    Ok(TABLE.render(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::json::StructValue;

    fn row(repo: &str, tag: &str) -> Value {
        Value::Struct(Box::new(StructValue {
            type_name: "*formatter.imageContext",
            fields: vec![
                ("Repository".into(), Value::str(repo)),
                ("Tag".into(), Value::str(tag)),
            ],
            sorted_json: true,
            json: None,
        }))
    }

    fn header() -> Value {
        Value::Object(vec![
            ("Repository".into(), Value::str("REPOSITORY")),
            ("Tag".into(), Value::str("TAG")),
        ])
    }

    #[test]
    fn table_with_header() {
        let rows = [row("busybox", "latest"), row("<none>", "<none>")];
        let out = render("table {{.Repository}}\\t{{.Tag}}", &rows, &header()).unwrap();
        assert_eq!(
            out,
            "REPOSITORY   TAG\nbusybox      latest\n<none>       <none>\n"
        );
        assert_eq!(render("table {{.Tag}}", &[], &header()).unwrap(), "TAG\n");
    }

    #[test]
    fn raw_and_json() {
        let rows = [row("busybox", "latest")];
        assert_eq!(
            render("{{.Repository}}:{{.Tag}}", &rows, &header()).unwrap(),
            "busybox:latest\n"
        );
        assert_eq!(
            render("json", &rows, &header()).unwrap(),
            "{\"Repository\":\"busybox\",\"Tag\":\"latest\"}\n"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            render("{{.ID", &[], &header()).unwrap_err(),
            "template parsing error: template: :1: unclosed action"
        );
        assert_eq!(
            render("{{.Nope}}", &[row("a", "b")], &header()).unwrap_err(),
            "template parsing error: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.imageContext"
        );
    }
}
