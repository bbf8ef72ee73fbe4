//! Splits a Go template into text and action tokens.

use super::{err_at_line, Tok, Token};

/// A piece of template source: literal text or the tokens of one `{{…}}`.
#[derive(Debug)]
pub(super) enum Item {
    Text(String),
    Action { pos: usize, tokens: Vec<Token> },
}

pub(super) fn lex(name: &str, src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest_start = 0;
    let mut trim_next_text = false;
    while rest_start <= src.len() {
        let Some(open_rel) = src[rest_start..].find("{{") else {
            push_text(&mut items, &src[rest_start..], trim_next_text, false);
            break;
        };
        let open = rest_start + open_rel;
        let mut body = open + 2;
        let trim_left = is_trim_marker(&src[body..]);
        if trim_left {
            body += 2;
        }
        push_text(
            &mut items,
            &src[rest_start..open],
            trim_next_text,
            trim_left,
        );
        let (tokens, end, trim_right) = lex_action(name, src, body)?;
        if !tokens.is_empty() {
            items.push(Item::Action { pos: body, tokens });
        }
        trim_next_text = trim_right;
        rest_start = end;
    }
    Ok(items)
}

/// `{{- ` trims the text before; the dash must be followed by a space.
fn is_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && b[1].is_ascii_whitespace()
}

fn push_text(items: &mut Vec<Item>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start_matches(|c: char| c.is_ascii_whitespace());
    }
    if trim_end {
        t = t.trim_end_matches(|c: char| c.is_ascii_whitespace());
    }
    if !t.is_empty() {
        items.push(Item::Text(t.to_string()));
    }
}

/// Lexes from `start` to the closing `}}`; returns tokens, the offset after
/// the action and whether it ended with ` -}}`.
fn lex_action(name: &str, src: &str, start: usize) -> Result<(Vec<Token>, usize, bool), String> {
    let b = src.as_bytes();
    let mut i = start;
    let mut tokens = Vec::new();
    let unclosed = || err_at_line(name, src, start, "unclosed action");
    // Comments: {{/* … */}}
    if src[i..].starts_with("/*") {
        let close = src[i..]
            .find("*/")
            .ok_or_else(|| err_at_line(name, src, start, "unclosed comment"))?;
        i += close + 2;
        let rest = &src[i..];
        if let Some(r) = rest.strip_prefix("}}") {
            return Ok((tokens, src.len() - r.len(), false));
        }
        if rest.len() >= 4
            && rest.as_bytes()[0].is_ascii_whitespace()
            && rest[1..].starts_with("-}}")
        {
            return Ok((tokens, i + 4, true));
        }
        return Err(err_at_line(
            name,
            src,
            start,
            "comment ends before closing delimiter",
        ));
    }
    loop {
        if i >= b.len() {
            return Err(unclosed());
        }
        let c = b[i];
        if c.is_ascii_whitespace() {
            if src[i + 1..].starts_with("-}}") {
                return Ok((tokens, i + 4, true));
            }
            i += 1;
            continue;
        }
        if src[i..].starts_with("}}") {
            return Ok((tokens, i + 2, false));
        }
        let pos = i;
        let tok = match c {
            b'|' => {
                i += 1;
                Tok::Pipe
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Declare
            }
            b'=' => {
                i += 1;
                Tok::Assign
            }
            b'"' => {
                let (s, end) = lex_quoted(src, i).ok_or_else(unclosed)?;
                i = end;
                Tok::Str(s)
            }
            b'`' => {
                let close = src[i + 1..].find('`').ok_or_else(unclosed)?;
                let s = src[i + 1..i + 1 + close].to_string();
                i += close + 2;
                Tok::Str(s)
            }
            b'.' if b.get(i + 1).is_some_and(|c| is_ident_start(*c)) => {
                let (names, end) = lex_fields(src, i);
                i = end;
                Tok::Field(names)
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b'$' => {
                let end = ident_end(src, i + 1);
                let var = src[i..end].to_string();
                let (names, end) = lex_fields(src, end);
                i = end;
                Tok::Var(var, names)
            }
            c if c.is_ascii_digit()
                || ((c == b'-' || c == b'+') && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let end = i
                    + 1
                    + src[i + 1..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                        .unwrap_or(src.len() - i - 1);
                let text = &src[i..end];
                i = end;
                Tok::Num(parse_number(text).ok_or_else(|| {
                    err_at_line(name, src, pos, &format!("bad number syntax: {text:?}"))
                })?)
            }
            c if is_ident_start(c) => {
                let end = ident_end(src, i);
                let word = &src[i..end];
                let glued = b.get(end) == Some(&b'.') && !matches!(word, "true" | "false" | "nil");
                if glued && !b.get(end + 1).is_some_and(|c| is_ident_start(*c)) {
                    // Go lexes `json.` as a function then a dot with no
                    // space between them, which its parser refuses.
                    return Err(err_at_line(name, src, pos, "unexpected <.> in operand"));
                }
                if glued {
                    // `json.Config` chains fields onto the function's result.
                    tokens.push(Token {
                        pos,
                        tok: Tok::Ident(word.to_string()),
                    });
                    let (names, after) = lex_fields(src, end);
                    tokens.push(Token {
                        pos: end,
                        tok: Tok::Chain(names),
                    });
                    i = after;
                    continue;
                }
                i = end;
                match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(word.to_string()),
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err_at_line(
                    name,
                    src,
                    pos,
                    &format!("unexpected {ch:?} in command"),
                ));
            }
        };
        // `(…).Field` chains a field onto a parenthesized value.
        if matches!(tok, Tok::RParen)
            && b.get(i) == Some(&b'.')
            && b.get(i + 1).is_some_and(|c| is_ident_start(*c))
        {
            tokens.push(Token { pos, tok });
            let (names, end) = lex_fields(src, i);
            tokens.push(Token {
                pos: i,
                tok: Tok::Chain(names),
            });
            i = end;
            continue;
        }
        tokens.push(Token { pos, tok });
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn ident_end(src: &str, from: usize) -> usize {
    from + src[from..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(src.len() - from)
}

/// `.A.B.C` starting at a dot; returns the names and the end offset.
fn lex_fields(src: &str, mut i: usize) -> (Vec<String>, usize) {
    let b = src.as_bytes();
    let mut names = Vec::new();
    while b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
        let end = ident_end(src, i + 1);
        names.push(src[i + 1..end].to_string());
        i = end;
    }
    (names, i)
}

fn lex_quoted(src: &str, start: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Some((out, start + 1 + off + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

fn parse_number(text: &str) -> Option<serde_json::Number> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n.into());
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Into::into);
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}
