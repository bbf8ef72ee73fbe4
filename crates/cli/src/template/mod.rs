//! A subset of Go's `text/template`, enough for docker's `--format`:
//! fields (`.A.B`), variables, pipelines, parenthesized calls, `if`/`else`,
//! `with`, `range`, trim markers, and the functions the docker CLI offers
//! (`json`, `join`, `split`, `upper`, `lower`, `title`, `pad`, `truncate`)
//! plus Go's builtins (`index`, `len`, `eq`…, `print*`, `and`/`or`/`not`).
//!
//! Errors read like Go's so scripts that match on them keep working.

mod exec;
mod fmt;
mod lex;

use crate::format::json::Value;
use lex::Item;

pub(crate) use exec::print_value;
pub use exec::MissingKey;

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    name: String,
    src: String,
    nodes: Vec<Node>,
}

/// How to execute a template.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub missing: MissingKey,
    /// Render a table header: docker's `HeaderFunctions` make the text
    /// functions return their input unchanged.
    pub header: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            missing: MissingKey::NoValue,
            header: false,
        }
    }
}

impl Template {
    /// Parses `src`; errors are `template: NAME:LINE: MESSAGE`.
    pub fn parse(name: &str, src: &str) -> Result<Template, String> {
        let items = lex::lex(name, src)?;
        let mut parser = Parser {
            name,
            src,
            items: items.into_iter().peekable(),
        };
        let (nodes, end) = parser.list()?;
        if let Some(end) = end {
            let (pos, what) = match end {
                End::End(pos) => (pos, "{{end}}"),
                End::Else(pos, _) => (pos, "{{else}}"),
            };
            return Err(err_at_line(name, src, pos, &format!("unexpected {what}")));
        }
        Ok(Template {
            name: name.to_string(),
            src: src.to_string(),
            nodes,
        })
    }

    /// Runs the template on `data`; errors are
    /// `template: NAME:LINE:COL: executing "NAME" at <…>: MESSAGE`.
    pub fn execute(&self, data: &Value, opts: Options) -> Result<String, String> {
        exec::run(self, data, opts)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub pos: usize,
    pub tok: Tok,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Field(Vec<String>),
    Chain(Vec<String>),
    Dot,
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(crate) struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Field(usize, Vec<String>),
    Var(usize, String, Vec<String>),
    Chain(usize, Box<Arg>, Vec<String>),
    Dot,
    Func(String),
    Literal(Value),
    Pipe(Pipe),
}

enum End {
    End(usize),
    /// `{{else}}`, or `{{else if …}}` / `{{else with …}}` with the keyword and its tokens.
    Else(usize, Option<(String, Vec<Token>)>),
}

struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    items: std::iter::Peekable<std::vec::IntoIter<Item>>,
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: &str) -> String {
        err_at_line(self.name, self.src, pos, msg)
    }

    /// Nodes up to `{{end}}`/`{{else}}` (returned) or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Option<End>), String> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (pos, mut tokens) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { pos, tokens } => (pos, tokens),
            };
            let keyword = match &tokens[0].tok {
                Tok::Ident(w) => w.clone(),
                _ => String::new(),
            };
            match keyword.as_str() {
                "end" => return Ok((nodes, Some(End::End(pos)))),
                "else" => {
                    tokens.remove(0);
                    let chained = match tokens.first().map(|t| &t.tok) {
                        Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                            let k = k.clone();
                            tokens.remove(0);
                            Some((k, tokens))
                        }
                        _ => None,
                    };
                    return Ok((nodes, Some(End::Else(pos, chained))));
                }
                "if" | "with" | "range" => {
                    tokens.remove(0);
                    nodes.push(self.control(&keyword, pos, tokens)?);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(self.err(pos, &format!("{{{{{keyword}}}}} is not supported")));
                }
                _ => nodes.push(Node::Action(self.pipeline(pos, tokens, "command")?)),
            }
        }
        Ok((nodes, None))
    }

    fn control(&mut self, keyword: &str, pos: usize, tokens: Vec<Token>) -> Result<Node, String> {
        let pipe = self.pipeline(pos, tokens, keyword)?;
        let (body, end) = self.list()?;
        let els = match end {
            None => return Err(self.err(self.src.len(), "unexpected EOF")),
            Some(End::End(_)) => Vec::new(),
            Some(End::Else(_, None)) => match self.list()? {
                (els, Some(End::End(_))) => els,
                (_, Some(End::Else(p, _))) => {
                    return Err(self.err(p, "expected end; found {{else}}"))
                }
                (_, None) => return Err(self.err(self.src.len(), "unexpected EOF")),
            },
            // `else if` shares the outer `end`: it is an `if` nested in the else branch.
            Some(End::Else(p, Some((k, toks)))) => vec![self.control(&k, p, toks)?],
        };
        Ok(match keyword {
            "if" => Node::If(pipe, body, els),
            "with" => Node::With(pipe, body, els),
            _ => Node::Range(pipe, body, els),
        })
    }

    fn pipeline(&self, pos: usize, tokens: Vec<Token>, context: &str) -> Result<Pipe, String> {
        let mut toks = tokens.into_iter().peekable();
        let pipe = self.pipe_tokens(pos, &mut toks, context, false)?;
        if let Some(t) = toks.next() {
            return Err(self.err(t.pos, &format!("unexpected {:?} in {context}", t.tok)));
        }
        Ok(pipe)
    }

    fn pipe_tokens(
        &self,
        pos: usize,
        toks: &mut std::iter::Peekable<std::vec::IntoIter<Token>>,
        context: &str,
        nested: bool,
    ) -> Result<Pipe, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=` or `$i, $e :=` declarations.
        let lookahead: Vec<Token> = toks.clone().take(4).collect();
        let is_decl = |t: &[Token]| match t {
            [Token {
                tok: Tok::Var(_, f),
                ..
            }, Token {
                tok: Tok::Declare | Tok::Assign,
                ..
            }, ..] => f.is_empty(),
            [Token {
                tok: Tok::Var(_, f),
                ..
            }, Token {
                tok: Tok::Comma, ..
            }, Token {
                tok: Tok::Var(_, g),
                ..
            }, Token {
                tok: Tok::Declare | Tok::Assign,
                ..
            }] => f.is_empty() && g.is_empty(),
            _ => false,
        };
        if is_decl(&lookahead) {
            for t in toks.by_ref() {
                match t.tok {
                    Tok::Var(v, _) => decl.push(v),
                    Tok::Comma => {}
                    Tok::Declare => break,
                    Tok::Assign => {
                        assign = true;
                        break;
                    }
                    _ => unreachable!("checked by is_decl"),
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command(toks, nested)?;
            if cmd.args.is_empty() {
                return Err(self.err(cmd.pos.max(pos), &format!("missing value for {context}")));
            }
            cmds.push(cmd);
            match toks.peek().map(|t| &t.tok) {
                Some(Tok::Pipe) => {
                    toks.next();
                }
                _ => break,
            }
        }
        Ok(Pipe {
            pos,
            decl,
            assign,
            cmds,
        })
    }

    fn command(
        &self,
        toks: &mut std::iter::Peekable<std::vec::IntoIter<Token>>,
        nested: bool,
    ) -> Result<Cmd, String> {
        let mut args = Vec::new();
        let mut start = None;
        while let Some(t) = toks.peek() {
            if matches!(t.tok, Tok::Pipe) || (nested && matches!(t.tok, Tok::RParen)) {
                break;
            }
            let t = toks.next().expect("peeked");
            start.get_or_insert(t.pos);
            let arg = match t.tok {
                Tok::Field(names) => Arg::Field(t.pos, names),
                Tok::Var(v, names) => Arg::Var(t.pos, v, names),
                Tok::Dot => Arg::Dot,
                Tok::Ident(name) => {
                    if !exec::is_function(&name) {
                        return Err(self.err(t.pos, &format!("function {name:?} not defined")));
                    }
                    match toks.peek() {
                        Some(Token {
                            tok: Tok::Chain(names),
                            ..
                        }) => {
                            let names = names.clone();
                            toks.next();
                            Arg::Chain(t.pos, Box::new(Arg::Func(name)), names)
                        }
                        _ => Arg::Func(name),
                    }
                }
                Tok::Str(s) => Arg::Literal(Value::String(s)),
                Tok::Num(n) => Arg::Literal(Value::Number(n)),
                Tok::Bool(b) => Arg::Literal(Value::Bool(b)),
                Tok::Nil => Arg::Literal(Value::Null),
                Tok::LParen => {
                    let inner = self.pipe_tokens(t.pos, toks, "parenthesized pipeline", true)?;
                    match toks.next() {
                        Some(Token {
                            tok: Tok::RParen, ..
                        }) => {}
                        _ => return Err(self.err(t.pos, "unclosed left paren")),
                    }
                    match toks.peek() {
                        Some(Token {
                            tok: Tok::Chain(_), ..
                        }) => {
                            let Some(Token {
                                pos,
                                tok: Tok::Chain(names),
                            }) = toks.next()
                            else {
                                unreachable!("peeked")
                            };
                            Arg::Chain(pos, Box::new(Arg::Pipe(inner)), names)
                        }
                        _ => Arg::Pipe(inner),
                    }
                }
                other => return Err(self.err(t.pos, &format!("unexpected {other:?} in operand"))),
            };
            args.push(arg);
        }
        Ok(Cmd {
            pos: start.unwrap_or(0),
            args,
        })
    }
}

pub(crate) fn line_of(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = 1 + before.matches('\n').count();
    let col = pos - before.rfind('\n').map_or(0, |i| i + 1);
    (line, col)
}

pub(crate) fn err_at_line(name: &str, src: &str, pos: usize, msg: &str) -> String {
    format!("template: {name}:{}: {msg}", line_of(src, pos).0)
}

#[cfg(test)]
mod tests;
