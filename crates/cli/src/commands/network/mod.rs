//! `servin network …`: docker's network commands over the `/networks` API,
//! with docker v28's flags, output and messages.

pub mod connect;
pub mod create;
pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Method;

use super::Ctx;
use crate::client::Client;
use crate::usage::{self, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Connect a container to a network
    #[command(override_usage = usage::NETWORK_CONNECT.full)]
    Connect(Box<connect::ConnectArgs>),
    /// Create a network
    #[command(override_usage = usage::NETWORK_CREATE.full)]
    Create(Box<create::Args>),
    /// Disconnect a container from a network
    #[command(override_usage = usage::NETWORK_DISCONNECT.full)]
    Disconnect(connect::DisconnectArgs),
    /// Display detailed information on one or more networks
    #[command(override_usage = usage::NETWORK_INSPECT.full)]
    Inspect(inspect::Args),
    /// List networks
    #[command(visible_alias = "list", override_usage = usage::NETWORK_LS.full)]
    Ls(ls::Args),
    /// Remove all unused networks
    #[command(override_usage = usage::NETWORK_PRUNE.full)]
    Prune(prune::Args),
    /// Remove one or more networks
    #[command(visible_alias = "remove", override_usage = usage::NETWORK_RM.full)]
    Rm(rm::Args),
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    use usage as u;
    match args.command {
        Command::Connect(a) => connect::run_connect(ctx, &u::NETWORK_CONNECT, *a).await,
        Command::Create(a) => create::run(ctx, &u::NETWORK_CREATE, *a).await,
        Command::Disconnect(a) => connect::run_disconnect(ctx, &u::NETWORK_DISCONNECT, a).await,
        Command::Inspect(a) => inspect::run(ctx, &u::NETWORK_INSPECT, a).await,
        Command::Ls(a) => ls::run(ctx, &u::NETWORK_LS, a).await,
        Command::Prune(a) => prune::run(ctx, &u::NETWORK_PRUNE, a).await,
        Command::Rm(a) => rm::run(ctx, &u::NETWORK_RM, a).await,
    }
}

/// Docker's client-side `trimID`: surrounding space goes, nothing left is
/// an error ("invalid network name or ID: value is empty").
fn trim_id(kind: &str, id: &str) -> Result<String> {
    let trimmed = id.trim();
    if trimmed.is_empty() {
        anyhow::bail!("invalid {kind} name or ID: value is empty");
    }
    Ok(trimmed.to_string())
}

/// `/networks/NAME`, escaped for the URL.
fn network_path(name: &str) -> String {
    format!("/networks/{}", crate::client::escape_path(name))
}

/// POSTs a JSON body and returns the answer's bytes.
async fn post_json(client: &Client, path: &str, body: String) -> Result<Bytes> {
    let resp = client
        .request(
            Method::POST,
            path,
            &[],
            &[("Content-Type", "application/json")],
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .await?;
    Ok(resp.into_body().collect().await?.to_bytes())
}

/// pflag's message for a flag value it refused, with the usage (exit 125).
fn bad_flag(usage: &Usage, flag: &str, value: &str, err: impl std::fmt::Display) -> anyhow::Error {
    usage.flag_error(&format!(
        "invalid argument {value:?} for \"{flag}\" flag: {err}"
    ))
}

/// A pflag bool flag typed as `--flag` or `--flag=VALUE`; `None` when absent.
fn bool_flag(usage: &Usage, flag: &str, value: &Option<String>) -> Result<Option<bool>> {
    value
        .as_deref()
        .map(|v| crate::opts::units::parse_bool(v).map_err(|e| bad_flag(usage, flag, v, e)))
        .transpose()
}

/// pflag's `StringSlice`: each value is a line of CSV, and repeats add up.
fn string_slice(usage: &Usage, flag: &str, values: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for v in values {
        if v.is_empty() {
            continue;
        }
        out.extend(csv_line(v).map_err(|e| bad_flag(usage, flag, v, e))?);
    }
    Ok(out)
}

/// One line of Go's `encoding/csv` as pflag reads slice flags: commas split,
/// a field may be `"`-quoted (`""` inside is a quote).
fn csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    let mut column = 0;
    while let Some(c) = chars.next() {
        column += c.len_utf8();
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    column += 1;
                    field.push('"');
                }
                '"' => match chars.peek() {
                    None | Some(',') => quoted = false,
                    Some(_) => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            column + 1
                        ))
                    }
                },
                c => field.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            '"' if at_start => quoted = true,
            '"' => {
                return Err(format!(
                    "parse error on line 1, column {column}: bare \" in non-quoted-field"
                ))
            }
            c => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(format!(
            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
            column + 1
        ));
    }
    fields.push(field);
    Ok(fields)
}

/// Docker's `MapOpts`: `k=v`, or `k` alone for an empty value.
fn map_opts(values: &[String]) -> std::collections::BTreeMap<String, String> {
    values
        .iter()
        .map(|v| {
            let (k, v) = v.split_once('=').unwrap_or((v, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_as_csv() {
        assert_eq!(csv_line("a,b").unwrap(), vec!["a", "b"]);
        assert_eq!(csv_line("\"a,b\",c").unwrap(), vec!["a,b", "c"]);
        assert_eq!(
            csv_line("a\"b").unwrap_err(),
            "parse error on line 1, column 2: bare \" in non-quoted-field"
        );
        let u = &usage::NETWORK_CONNECT;
        let v = string_slice(u, "--alias", &["x,y".into(), "z".into(), String::new()]).unwrap();
        assert_eq!(v, vec!["x", "y", "z"]);
    }

    #[test]
    fn ids_are_trimmed() {
        assert_eq!(trim_id("network", " n ").unwrap(), "n");
        assert_eq!(
            trim_id("network", "  ").unwrap_err().to_string(),
            "invalid network name or ID: value is empty"
        );
    }

    #[test]
    fn bool_flags_take_go_values() {
        let u = &usage::NETWORK_CREATE;
        assert_eq!(bool_flag(u, "--ipv6", &None).unwrap(), None);
        assert_eq!(
            bool_flag(u, "--ipv6", &Some("false".into())).unwrap(),
            Some(false)
        );
        let e = bool_flag(u, "--ipv6", &Some("maybe".into())).unwrap_err();
        assert!(e.to_string().starts_with(
            "invalid argument \"maybe\" for \"--ipv6\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n\nUsage:  servin network create"
        ));
    }
}
