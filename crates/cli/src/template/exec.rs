//! Executes a parsed template against a [`Value`].

use std::cmp::Ordering;

use super::fmt::{sprint, sprintf, title};
use super::{line_of, Arg, Cmd, Node, Options, Pipe, Template};
use crate::format::json::Value;

/// What a missing map key evaluates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingKey {
    /// Go's default for `map[string]any`: prints `<no value>`.
    NoValue,
    /// `missingkey=error`, as `docker inspect` uses on raw JSON.
    Error,
    /// The zero value of a `map[string]string`: "" (table headers).
    Empty,
}

const FUNCTIONS: &[&str] = &[
    // docker's templates.basicFunctions
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
    // Go builtins
    "and", "or", "not", "len", "index", "eq", "ne", "lt", "le", "gt", "ge", "print", "printf",
    "println",
];

pub(super) fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

struct State {
    opts: Options,
    vars: Vec<(String, Value)>,
    out: String,
}

/// An execution error with the node it happened at.
struct ExecError {
    pos: usize,
    context: String,
    msg: String,
}

type Result<T> = std::result::Result<T, ExecError>;

pub(super) fn run(
    tmpl: &Template,
    data: &Value,
    opts: Options,
) -> std::result::Result<String, String> {
    let mut state = State {
        opts,
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
    };
    match state.walk(data, &tmpl.nodes) {
        Ok(()) => Ok(state.out),
        Err(e) => {
            let (line, col) = line_of(&tmpl.src, e.pos);
            Err(format!(
                "template: {name}:{line}:{col}: executing \"{name}\" at <{}>: {}",
                e.context,
                e.msg,
                name = tmpl.name
            ))
        }
    }
}

impl State {
    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<()> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipe(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.out.push_str(&print_value(&v));
                    }
                }
                Node::If(pipe, then, els) | Node::With(pipe, then, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, pipe)?;
                    let result = if truth(&v) {
                        let dot = if matches!(node, Node::With(..)) {
                            &v
                        } else {
                            dot
                        };
                        self.walk(dot, then)
                    } else {
                        self.walk(dot, els)
                    };
                    self.vars.truncate(mark);
                    result?;
                }
                Node::Range(pipe, body, els) => {
                    let mark = self.vars.len();
                    let result = self.range(dot, pipe, body, els);
                    self.vars.truncate(mark);
                    result?;
                }
            }
        }
        Ok(())
    }

    fn range(&mut self, dot: &Value, pipe: &Pipe, body: &[Node], els: &[Node]) -> Result<()> {
        // The declared variables take the key/element, not the whole value.
        let value = self.pipe_value(dot, pipe)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::int(i as i64), v.clone()))
                .collect(),
            Value::Object(fields) => {
                let mut f: Vec<_> = fields
                    .iter()
                    .map(|(k, v)| (Value::str(k), v.clone()))
                    .collect();
                f.sort_by_key(|a| print_value(&a.0));
                f
            }
            Value::Null | Value::TypedNull(_) | Value::Missing => Vec::new(),
            other => {
                return Err(self.error(
                    pipe.pos,
                    &pipe_text(pipe),
                    format!("range can't iterate over {}", print_value(other)),
                ))
            }
        };
        if items.is_empty() {
            return self.walk(dot, els);
        }
        let mark = self.vars.len();
        for (key, elem) in items {
            self.vars.truncate(mark);
            match pipe.decl.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), elem.clone())),
                [k, v, ..] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), elem.clone()));
                }
            }
            self.walk(&elem, body)?;
        }
        Ok(())
    }

    /// Evaluates a pipeline and performs its declaration, if any.
    fn pipe(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value> {
        let v = self.pipe_value(dot, pipe)?;
        for name in &pipe.decl {
            if pipe.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        return Err(self.error(
                            pipe.pos,
                            name,
                            format!("undefined variable: {name}"),
                        ))
                    }
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn pipe_value(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(dot, cmd, value)?);
        }
        Ok(value.unwrap_or(Value::Missing))
    }

    fn command(&mut self, dot: &Value, cmd: &Cmd, piped: Option<Value>) -> Result<Value> {
        let (first, rest) = cmd
            .args
            .split_first()
            .expect("parser rejects empty commands");
        if let Arg::Func(name) = first {
            let mut args = Vec::with_capacity(rest.len() + 1);
            // `and`/`or` stop at the first deciding argument.
            for a in rest {
                let v = self.arg(dot, a)?;
                let decided = (name == "and" && !truth(&v)) || (name == "or" && truth(&v));
                args.push(v);
                if decided && piped.is_none() {
                    return Ok(args.pop().expect("just pushed"));
                }
            }
            args.extend(piped);
            return self.call(name, args).map_err(|msg| {
                self.error(
                    cmd.pos,
                    &cmd_text(cmd),
                    format!("error calling {name}: {msg}"),
                )
            });
        }
        if !rest.is_empty() || piped.is_some() {
            return Err(self.error(
                cmd.pos,
                &cmd_text(cmd),
                format!("can't give argument to non-function {}", arg_text(first)),
            ));
        }
        self.arg(dot, first)
    }

    fn arg(&mut self, dot: &Value, arg: &Arg) -> Result<Value> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Field(pos, names) => self.fields(dot, *pos, names, &arg_text(arg)),
            Arg::Var(pos, name, names) => {
                let Some(v) = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                else {
                    return Err(self.error(*pos, name, format!("undefined variable: {name}")));
                };
                self.fields(&v, *pos, names, &arg_text(arg))
            }
            Arg::Chain(pos, inner, names) => {
                let v = match inner.as_ref() {
                    // `json.X`: Go calls the function with no arguments.
                    Arg::Func(name) => self
                        .call(name, Vec::new())
                        .map_err(|msg| self.error(*pos, name, msg))?,
                    other => self.arg(dot, other)?,
                };
                self.fields(&v, *pos, names, &arg_text(arg))
            }
            Arg::Pipe(pipe) => {
                let mark = self.vars.len();
                let v = self.pipe(dot, pipe);
                self.vars.truncate(mark);
                v
            }
            Arg::Func(name) => self
                .call(name, Vec::new())
                .map_err(|msg| self.error(0, name, msg)),
        }
    }

    fn fields(&self, recv: &Value, pos: usize, names: &[String], text: &str) -> Result<Value> {
        let mut v = recv.clone();
        for name in names {
            v = match &v {
                Value::Object(fields) => match fields.iter().find(|(k, _)| k == name) {
                    Some((_, Value::Null)) => typed_null(name),
                    Some((_, found)) => found.clone(),
                    None => match self.opts.missing {
                        MissingKey::NoValue => Value::Missing,
                        MissingKey::Empty => Value::str(""),
                        MissingKey::Error => {
                            return Err(self.error(
                                pos,
                                text,
                                format!("map has no entry for key {name:?}"),
                            ))
                        }
                    },
                },
                Value::Struct(s) => match s.fields.iter().find(|(k, _)| k == name) {
                    Some((_, found)) => found.clone(),
                    None => {
                        return Err(self.error(
                            pos,
                            text,
                            format!("can't evaluate field {name} in type {}", s.type_name),
                        ))
                    }
                },
                Value::Null | Value::TypedNull(_) | Value::Missing => Value::Missing,
                other => {
                    return Err(self.error(
                        pos,
                        text,
                        format!("can't evaluate field {name} in type {}", go_type(other)),
                    ))
                }
            };
        }
        Ok(v)
    }

    fn error(&self, pos: usize, context: &str, msg: String) -> ExecError {
        ExecError {
            pos,
            context: context.to_string(),
            msg,
        }
    }

    fn call(&self, name: &str, args: Vec<Value>) -> std::result::Result<Value, String> {
        let want = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ))
            }
        };
        if self.opts.header
            && matches!(
                name,
                "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
            )
        {
            return Ok(args.into_iter().next().unwrap_or(Value::str("")));
        }
        match name {
            "json" => {
                want(1)?;
                Ok(Value::String(args[0].to_go_json(false)))
            }
            "split" => {
                want(2)?;
                let (s, sep) = (print_value(&args[0]), print_value(&args[1]));
                Ok(if sep.is_empty() {
                    Value::strings(s.chars().map(String::from))
                } else {
                    Value::strings(s.split(sep.as_str()))
                })
            }
            "join" => {
                want(2)?;
                let sep = print_value(&args[1]);
                match &args[0] {
                    Value::Array(a) => Ok(Value::String(
                        a.iter().map(print_value).collect::<Vec<_>>().join(&sep),
                    )),
                    Value::Null | Value::TypedNull(_) => Ok(Value::str("")),
                    other => Err(format!(
                        "wrong type for value; expected []string; got {}",
                        go_type(other)
                    )),
                }
            }
            "title" => {
                want(1)?;
                Ok(Value::String(title(&print_value(&args[0]))))
            }
            "lower" => {
                want(1)?;
                Ok(Value::String(print_value(&args[0]).to_lowercase()))
            }
            "upper" => {
                want(1)?;
                Ok(Value::String(print_value(&args[0]).to_uppercase()))
            }
            "pad" => {
                want(3)?;
                let s = print_value(&args[0]);
                if s.is_empty() {
                    return Ok(Value::String(s));
                }
                let (pre, post) = (
                    as_int(&args[1])?.max(0) as usize,
                    as_int(&args[2])?.max(0) as usize,
                );
                Ok(Value::String(format!(
                    "{}{s}{}",
                    " ".repeat(pre),
                    " ".repeat(post)
                )))
            }
            "truncate" => {
                want(2)?;
                let s = print_value(&args[0]);
                let n = as_int(&args[1])?.max(0) as usize;
                Ok(Value::String(
                    s.char_indices()
                        .nth(n)
                        .map_or(s.clone(), |(i, _)| s[..i].to_string()),
                ))
            }
            "and" => Ok(args
                .iter()
                .find(|v| !truth(v))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Bool(true))),
            "or" => Ok(args
                .iter()
                .find(|v| truth(v))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Bool(false))),
            "not" => {
                want(1)?;
                Ok(Value::Bool(!truth(&args[0])))
            }
            "len" => {
                want(1)?;
                match &args[0] {
                    Value::String(s) => Ok(Value::int(s.len() as i64)),
                    Value::Array(a) => Ok(Value::int(a.len() as i64)),
                    Value::Object(f) => Ok(Value::int(f.len() as i64)),
                    Value::Null | Value::TypedNull(_) => Ok(Value::int(0)),
                    other => Err(format!("len of type {}", go_type(other))),
                }
            }
            "index" => {
                let mut it = args.into_iter();
                let mut v = it
                    .next()
                    .ok_or("wrong number of args for index: want at least 1 got 0")?;
                for key in it {
                    v = match (&v, &key) {
                        (Value::Array(a), Value::Number(_)) => {
                            let i = as_int(&key)?;
                            usize::try_from(i)
                                .ok()
                                .and_then(|i| a.get(i).cloned())
                                .ok_or_else(|| format!("index out of range: {i}"))?
                        }
                        (Value::Object(_) | Value::Struct(_), Value::String(k)) => {
                            v.get(k).cloned().unwrap_or(Value::Missing)
                        }
                        (Value::Null | Value::TypedNull(_) | Value::Missing, _) => Value::Missing,
                        _ => return Err(format!("can't index item of type {}", go_type(&v))),
                    };
                }
                Ok(v)
            }
            "eq" => {
                if args.len() < 2 {
                    return Err("missing argument for comparison".into());
                }
                for other in &args[1..] {
                    if compare(&args[0], other)? == Ordering::Equal {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let ord = compare(&args[0], &args[1])?;
                Ok(Value::Bool(match name {
                    "ne" => ord != Ordering::Equal,
                    "lt" => ord == Ordering::Less,
                    "le" => ord != Ordering::Greater,
                    "gt" => ord == Ordering::Greater,
                    _ => ord != Ordering::Less,
                }))
            }
            "print" => Ok(Value::String(sprint(&args))),
            "println" => Ok(Value::String(
                args.iter().map(print_value).collect::<Vec<_>>().join(" ") + "\n",
            )),
            "printf" => {
                let (fmt, rest) = args
                    .split_first()
                    .ok_or("wrong number of args for printf: want at least 1 got 0")?;
                Ok(Value::String(sprintf(&print_value(fmt), rest)))
            }
            _ => Err(format!("function {name:?} not defined")),
        }
    }
}

/// The Go type name docker users see in "can't evaluate field" errors.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Struct(s) => s.type_name,
        _ => "interface {}",
    }
}

/// Docker's typed structs print a nil slice as `[]` and a nil map as `map[]`;
/// the raw JSON only says `null`, so the field name decides.
fn typed_null(field: &str) -> Value {
    const LISTS: &[&str] = &[
        "Env",
        "Cmd",
        "Entrypoint",
        "OnBuild",
        "Shell",
        "RepoTags",
        "RepoDigests",
        "Layers",
        "Args",
        "Warnings",
        "Mounts",
        "DriverStatus",
        "SystemStatus",
        "SecurityOptions",
        "Volume",
        "Network",
        "Log",
        "Authorization",
        "Mirrors",
        "Components",
        "Manifests",
    ];
    const MAPS: &[&str] = &[
        "Labels",
        "Volumes",
        "ExposedPorts",
        "Options",
        "Data",
        "Details",
        "Runtimes",
        "IndexConfigs",
    ];
    if LISTS.contains(&field) {
        Value::TypedNull("[]")
    } else if MAPS.contains(&field) {
        Value::TypedNull("map[]")
    } else {
        Value::Null
    }
}

/// Go's truth: false, 0, nil and empty strings/lists/maps are false.
pub(super) fn truth(v: &Value) -> bool {
    match v {
        Value::Null | Value::TypedNull(_) | Value::Missing => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(f) => !f.is_empty(),
        Value::Struct(_) => true,
    }
}

fn compare(a: &Value, b: &Value) -> std::result::Result<Ordering, String> {
    let nullish = |v: &Value| matches!(v, Value::Null | Value::TypedNull(_) | Value::Missing);
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .ok_or_else(|| "incompatible types for comparison".to_string()),
        },
        (x, y) if nullish(x) && nullish(y) => Ok(Ordering::Equal),
        (x, y) if nullish(x) || nullish(y) => Ok(Ordering::Less),
        _ => Err("incompatible types for comparison".into()),
    }
}

fn as_int(v: &Value) -> std::result::Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| "expected integer".into()),
        other => Err(format!("expected integer; found {}", print_value(other))),
    }
}

/// Go's `%v`.
pub(crate) fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::TypedNull(s) => (*s).into(),
        Value::Missing => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(print_value).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(f) => {
            let mut f: Vec<_> = f.iter().collect();
            f.sort_by(|a, b| a.0.cmp(&b.0));
            let parts: Vec<String> = f
                .iter()
                .map(|(k, v)| format!("{k}:{}", print_value(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Struct(s) => format!(
            "{{{}}}",
            s.fields
                .iter()
                .map(|(_, v)| print_value(v))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn arg_text(arg: &Arg) -> String {
    match arg {
        Arg::Dot => ".".into(),
        Arg::Field(_, names) => names.iter().map(|n| format!(".{n}")).collect(),
        Arg::Var(_, v, names) => format!(
            "{v}{}",
            names.iter().map(|n| format!(".{n}")).collect::<String>()
        ),
        Arg::Chain(_, inner, names) => format!(
            "{}{}",
            arg_text(inner),
            names.iter().map(|n| format!(".{n}")).collect::<String>()
        ),
        Arg::Func(f) => f.clone(),
        Arg::Literal(Value::String(s)) => format!("{s:?}"),
        Arg::Literal(Value::Null) => "nil".into(),
        Arg::Literal(v) => print_value(v),
        Arg::Pipe(p) => format!("({})", pipe_text(p)),
    }
}

fn cmd_text(cmd: &Cmd) -> String {
    cmd.args.iter().map(arg_text).collect::<Vec<_>>().join(" ")
}

fn pipe_text(pipe: &Pipe) -> String {
    let cmds = pipe
        .cmds
        .iter()
        .map(cmd_text)
        .collect::<Vec<_>>()
        .join(" | ");
    if pipe.decl.is_empty() {
        cmds
    } else {
        format!("{} := {cmds}", pipe.decl.join(", "))
    }
}
