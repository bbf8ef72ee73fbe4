//! `--env-file`/`--label-file` and `-e NAME` (docker's `kvfile` and
//! `opts.ValidateEnv`).

use super::Lookup;
use crate::commands::path_error;

/// Reads `KEY=value` files in order. Lines without `=` take the process's
/// value when `lookup` is given (env files) and are dropped otherwise.
pub fn read_files(files: &[String], lookup: Option<Lookup<'_>>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for file in files {
        let data = std::fs::read(file).map_err(|e| path_error("open", file, &e).to_string())?;
        let lines = parse(&data, lookup).map_err(|e| format!("invalid env file ({file}): {e}"))?;
        out.extend(lines);
    }
    Ok(out)
}

fn parse(data: &[u8], lookup: Option<Lookup<'_>>) -> Result<Vec<String>, String> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut out = Vec::new();
    for (n, raw) in data.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(format!("invalid utf8 bytes at line {}: {raw:?}", n + 1));
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        if has_value {
            out.push(line.to_string());
        } else if let Some(value) = lookup.and_then(|f| f(line)) {
            out.push(format!("{key}={value}"));
        }
    }
    Ok(out)
}

/// `-e NAME` becomes `NAME=value` when the process has `NAME`.
pub fn with_process_value(entry: &str, lookup: Lookup<'_>) -> String {
    if entry.contains('=') {
        return entry.to_string();
    }
    match lookup(entry) {
        Some(v) => format!("{entry}={v}"),
        None => entry.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files() {
        let lookup = |k: &str| (k == "HOME_X").then(|| "/root".to_string());
        let lines = parse(
            b"\xEF\xBB\xBFFOO=bar\n# comment\n  BAZ\nHOME_X\n\nQ=1 2\r\n",
            Some(&lookup),
        )
        .unwrap();
        assert_eq!(lines, ["FOO=bar", "HOME_X=/root", "Q=1 2"]);
        assert_eq!(
            parse(b"A B=1\n", None).unwrap_err(),
            "variable 'A B' contains whitespaces"
        );
        assert_eq!(
            parse(b"=1\n", None).unwrap_err(),
            "no variable name on line '=1'"
        );
        assert_eq!(with_process_value("HOME_X", &lookup), "HOME_X=/root");
        assert_eq!(with_process_value("NOPE", &lookup), "NOPE");
        assert_eq!(
            read_files(&["/nonexistent/env".into()], None).unwrap_err(),
            "open /nonexistent/env: no such file or directory"
        );
    }
}
