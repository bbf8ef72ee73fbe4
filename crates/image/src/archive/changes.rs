//! Dockerfile instructions applied to an image's runtime config, as
//! `docker import -c` and `docker commit -c` take them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::StoreError;

/// Applies Dockerfile instructions, as `docker import -c` and
/// `docker commit -c` take them (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
/// ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), to an image's runtime config
/// (the `config` object of an image config). `$VAR` references expand from
/// the config's environment, as in a Dockerfile.
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), StoreError> {
    let mut cmd_set = false;
    for change in changes {
        let line = change.trim();
        let (instruction, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i.to_ascii_uppercase(), r.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        let bad =
            |why: String| StoreError::InvalidArgument(format!("Invalid change {line:?}: {why}"));
        if instruction.is_empty() {
            return Err(StoreError::InvalidArgument(
                "Invalid change: it is empty".into(),
            ));
        }
        let known = [
            "CMD",
            "ENTRYPOINT",
            "ENV",
            "EXPOSE",
            "LABEL",
            "ONBUILD",
            "STOPSIGNAL",
            "USER",
            "VOLUME",
            "WORKDIR",
        ];
        if !known.contains(&instruction.as_str()) {
            return Err(StoreError::InvalidArgument(format!(
                "{instruction} is not a valid change command"
            )));
        }
        if rest.is_empty() {
            return Err(bad(format!("{instruction} requires at least one argument")));
        }
        let env = env_of(config);
        let word = |s: &str| expand(s, &env, false).map(|w| w.concat()).map_err(&bad);
        match instruction.as_str() {
            "CMD" => {
                config.insert("Cmd".into(), json!(command_form(rest)));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), json!(command_form(rest)));
                // As in a Dockerfile: a new entrypoint drops an inherited command.
                if !cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            "ENV" => {
                for (k, v) in key_values(rest, &env).map_err(&bad)? {
                    set_env(config, &k, &v);
                }
            }
            "LABEL" => {
                let labels = object_field(config, "Labels");
                for (k, v) in key_values(rest, &env).map_err(&bad)? {
                    labels.insert(k, json!(v));
                }
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for w in expand(rest, &env, true).map_err(&bad)? {
                    ports.extend(
                        exposed_ports(&w).ok_or_else(|| bad(format!("invalid port {w:?}")))?,
                    );
                }
                let exposed = object_field(config, "ExposedPorts");
                for p in ports {
                    exposed.insert(p, json!({}));
                }
            }
            "USER" => {
                config.insert("User".into(), json!(word(rest)?));
            }
            "WORKDIR" => {
                let dir = word(rest)?;
                let current = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/");
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{current}/{dir}")
                };
                config.insert("WorkingDir".into(), json!(clean_path(&joined)));
            }
            "VOLUME" => {
                let paths = match json_array(rest) {
                    Some(items) => items
                        .iter()
                        .map(|s| word(s))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => expand(rest, &env, true).map_err(&bad)?,
                };
                if paths.iter().any(|p| p.trim().is_empty()) {
                    return Err(bad("VOLUME specified can not be an empty string".into()));
                }
                let volumes = object_field(config, "Volumes");
                for p in paths {
                    volumes.insert(p, json!({}));
                }
            }
            "STOPSIGNAL" => {
                let signal = word(rest)?;
                if !valid_signal(&signal) {
                    return Err(bad(format!("invalid signal {signal:?}")));
                }
                config.insert("StopSignal".into(), json!(signal));
            }
            "ONBUILD" => {
                let trigger = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(bad(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )));
                }
                match config.get_mut("OnBuild").and_then(Value::as_array_mut) {
                    Some(list) => list.push(json!(rest)),
                    None => {
                        config.insert("OnBuild".into(), json!([rest]));
                    }
                }
            }
            _ => unreachable!("instruction checked against the known list"),
        }
    }
    Ok(())
}

/// A JSON array of strings, when `s` is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    s.starts_with('[')
        .then(|| serde_json::from_str(s).ok())
        .flatten()
}

/// Exec form (a JSON array) or shell form, as CMD and ENTRYPOINT take them.
fn command_form(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

fn env_of(config: &Map<String, Value>) -> BTreeMap<String, String> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set_env(config: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = json!(format!("{key}={value}"));
    let list = config.entry("Env").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let items = list.as_array_mut().expect("made an array above");
    match items.iter_mut().find(|v| {
        v.as_str()
            .and_then(|s| s.split_once('='))
            .is_some_and(|(k, _)| k == key)
    }) {
        Some(existing) => *existing = entry,
        None => items.push(entry),
    }
}

fn object_field<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = config.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("made an object above")
}

/// `KEY=VALUE …` pairs (ENV, LABEL), or the older `KEY VALUE` form.
fn key_values(rest: &str, env: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    let words = expand(rest, env, true)?;
    if !words.first().is_some_and(|w| w.contains('=')) {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if value.trim().is_empty() {
            return Err(format!("{key} must have two arguments"));
        }
        let key = expand(key, env, false)?.concat();
        return Ok(vec![(key, expand(value.trim(), env, false)?.concat())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err("names can not be blank".to_string()),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("{w:?} is not of the form KEY=VALUE")),
        })
        .collect()
}

/// Splits a Dockerfile argument into words (or keeps it one word when
/// `split` is false), removing quotes and backslash escapes and expanding
/// `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}`.
fn expand(s: &str, env: &BTreeMap<String, String>, split: bool) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if split && c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
                continue;
            }
            '\\' => word.push(chars.next().unwrap_or('\\')),
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => word.push(c),
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.peek() {
                        Some(&n) if matches!(n, '"' | '\\' | '$') => {
                            word.push(n);
                            chars.next();
                        }
                        _ => word.push('\\'),
                    },
                    Some('$') => word.push_str(&variable(&mut chars, env)?),
                    Some(c) => word.push(c),
                    None => return Err("unterminated double quote".into()),
                }
            },
            '$' => word.push_str(&variable(&mut chars, env)?),
            c => word.push(c),
        }
        started = true;
    }
    if started {
        words.push(word);
    }
    Ok(words)
}

/// The value of the variable reference after a `$`.
fn variable(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.peek() {
        Some('{') => {
            chars.next();
            let mut inner = String::new();
            loop {
                match chars.next() {
                    Some('}') => break,
                    Some(c) => inner.push(c),
                    None => return Err("missing '}' in a variable reference".into()),
                }
            }
            let (name, modifier) = match inner.find(|c: char| !is_name(c)) {
                Some(i) => (&inner[..i], Some(&inner[i..])),
                None => (inner.as_str(), None),
            };
            let value = env.get(name).filter(|v| !v.is_empty());
            match modifier {
                None => Ok(env.get(name).cloned().unwrap_or_default()),
                Some(m) if m.starts_with(":-") => {
                    Ok(value.cloned().unwrap_or_else(|| m[2..].to_string()))
                }
                Some(m) if m.starts_with(":+") => {
                    Ok(value.map(|_| m[2..].to_string()).unwrap_or_default())
                }
                Some(m) => Err(format!("unsupported modifier {m:?} in ${{{inner}}}")),
            }
        }
        Some(&c) if is_name(c) => {
            let mut name = String::new();
            while let Some(&c) = chars.peek().filter(|c| is_name(**c)) {
                name.push(c);
                chars.next();
            }
            Ok(env.get(&name).cloned().unwrap_or_default())
        }
        _ => Ok("$".into()),
    }
}

/// EXPOSE's `port[/proto]` and `start-end[/proto]`, as `port/proto` keys.
fn exposed_ports(spec: &str) -> Option<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let (start, end) = ports.split_once('-').unwrap_or((ports, ports));
    let (start, end): (u16, u16) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then(|| (start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Linux signal names and numbers, as STOPSIGNAL takes them.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ", "RTMIN", "RTMAX",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    let offset = |prefix: &str, sep: char| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(sep))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
    };
    offset("RTMIN", '+') || offset("RTMAX", '-')
}

/// `/a/./b/../c//` → `/a/c`.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(list: &[&str]) -> Result<Value, StoreError> {
        let mut config = Map::new();
        apply_changes(
            &mut config,
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(Value::Object(config))
    }

    #[test]
    fn applies_dockerfile_changes() {
        let c = changes(&[
            r#"CMD ["sh"]"#,
            "ENV A=b",
            r#"env C="d e" F=$A"#,
            "ENV G h i",
            "EXPOSE 80 53/udp 8000-8001",
            r#"LABEL x=y "long key"=z"#,
            "USER nobody",
            "WORKDIR /srv",
            "WORKDIR app",
            r#"VOLUME ["/data", "/$A"]"#,
            "STOPSIGNAL SIGTERM",
            "ONBUILD RUN echo hi",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["Env"], json!(["A=b", "C=d e", "F=b", "G=h i"]));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["Labels"], json!({"x": "y", "long key": "z"}));
        assert_eq!(c["User"], json!("nobody"));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/b": {}}));
        assert_eq!(c["StopSignal"], json!("SIGTERM"));
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));

        let c = changes(&["ENTRYPOINT top -b", "CMD echo $HOME"]).unwrap();
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "top -b"]));
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo $HOME"]));
    }

    #[test]
    fn refuses_bad_changes() {
        for (change, wanted) in [
            ("FROM busybox", "FROM is not a valid change command"),
            ("RUN true", "RUN is not a valid change command"),
            ("ENV", "ENV requires at least one argument"),
            ("EXPOSE 80/http", "invalid port"),
            ("STOPSIGNAL SIGNOPE", "invalid signal"),
            ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
            ("ENV =x", "names can not be blank"),
            ("ENV A='b", "unterminated single quote"),
        ] {
            let err = changes(&[change]).unwrap_err().to_string();
            assert!(err.contains(wanted), "{change}: {err}");
        }
    }
}
