//! Go's `fmt` verbs and `strings.Title`, for template functions.

use std::fmt::Write as _;

use super::exec::print_value;
use crate::format::json::Value;

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
pub(super) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&print_value(a));
    }
    out
}

/// A subset of Go's `fmt.Sprintf`: flags `-0+ `, width, precision and the
/// verbs `v s d q t f e g x X %`.
pub(super) fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus) = (false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            width.push(d);
        }
        let mut prec: Option<usize> = None;
        if chars.next_if_eq(&'.').is_some() {
            let mut p = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                p.push(d);
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let num = |a: &Value| match a {
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        let mut text = match verb {
            'd' => match arg {
                Value::Number(n) => n.as_i64().map_or_else(|| n.to_string(), |i| i.to_string()),
                other => print_value(other),
            },
            'q' => {
                let mut s = String::new();
                crate::format::json::quote_into(&print_value(arg), false, &mut s);
                s
            }
            'f' | 'e' | 'g' => match num(arg) {
                Some(f) if verb == 'f' => format!("{f:.*}", prec.unwrap_or(6)),
                Some(f) if verb == 'e' => format!("{f:.*e}", prec.unwrap_or(6)),
                Some(f) => crate::format::go_g(f, prec.unwrap_or(17)),
                None => print_value(arg),
            },
            'x' | 'X' => {
                let s = match arg {
                    Value::Number(n) if n.as_i64().is_some() => {
                        format!("{:x}", n.as_i64().unwrap_or(0))
                    }
                    other => print_value(other)
                        .bytes()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                };
                if verb == 'X' {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            _ => {
                let s = print_value(arg);
                match prec {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
        };
        if plus && num(arg).is_some_and(|f| f >= 0.0) {
            text.insert(0, '+');
        }
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len < width {
            let pad = width - len;
            if left {
                text.push_str(&" ".repeat(pad));
            } else if zero && num(arg).is_some() {
                text.insert_str(usize::from(text.starts_with(['-', '+'])), &"0".repeat(pad));
            } else {
                text.insert_str(0, &" ".repeat(pad));
            }
        }
        out.push_str(&text);
    }
    out
}

/// Go's deprecated `strings.Title`.
pub(super) fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric() && c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_sep(prev) {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}
