//! One module per verb. Each has clap `Args` and a `run`.

pub mod attach;
pub mod container_prune;
pub mod cp;
pub mod create;
pub mod events;
pub mod exec;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod logs;
pub mod network;
pub mod pause;
pub mod port;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod start;
pub mod stats;
pub mod stop;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod version;
pub mod vm;
pub mod volume;
pub mod wait;

use std::collections::HashMap;

use anyhow::Result;
use servin_api::{ImageRef, ReferenceError};
use tokio::sync::OnceCell;

use crate::client::Client;
use crate::connect::{self, Host};
use crate::usage::Usage;

/// What every command gets: the daemon address and a connection made on
/// first use (so argument errors never start a daemon).
pub struct Ctx {
    pub host: Host,
    client: OnceCell<Client>,
}

impl Ctx {
    pub fn new(host: Host) -> Self {
        Ctx {
            host,
            client: OnceCell::new(),
        }
    }

    pub async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| connect::connect(&self.host))
            .await
    }
}

/// `X-Registry-Auth` for anonymous access: base64url of `{}`.
pub const NO_AUTH: &str = "e30=";

/// Runs `op` on every container at once, then prints each name that
/// succeeded in the order given; the errors are joined into one (docker's
/// `parallelOperation` with `errors.Join`).
pub async fn for_each_container<F, Fut>(names: &[String], op: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let results = futures::future::join_all(names.iter().map(|n| op(n.clone()))).await;
    let mut errors = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    join_errors(errors)
}

/// Docker's `errors.Join`: one line per error, exit status 1.
pub fn join_errors(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::usage::StatusError::fail(1, errors.join("\n")))
    }
}

/// Docker's `prompt.Confirm`: the question on stdout, "y" on stdin confirms;
/// end of input declines.
pub fn confirm(message: &str) -> Result<bool> {
    use std::io::{BufRead as _, Write as _};
    let mut out = std::io::stdout();
    write!(out, "{message} [y/N] ")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}

/// Parses a reference as docker's `ParseNormalizedNamed`, with its messages.
pub fn parse_ref(s: &str) -> Result<ImageRef, String> {
    ImageRef::parse(s).map_err(|e| match e {
        ReferenceError::Uppercase(name) => format!(
            "invalid reference format: repository name ({}) must be lowercase",
            remote_name(&name)
        ),
        other => other.to_string(),
    })
}

/// The path part of a name as docker reports it (`library/Bad` for `Bad`).
fn remote_name(name: &str) -> String {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            rest.to_string()
        }
        Some(_) => name.to_string(),
        None => format!("library/{name}"),
    }
}

/// Parses `-f name=value` filters as docker's `filters.ParseFlag`.
pub fn parse_filters(
    usage: &Usage,
    flag: &str,
    values: &[String],
) -> Result<HashMap<String, Vec<String>>> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        let Some((name, value)) = v.split_once('=') else {
            return Err(usage.flag_error(&format!(
                "invalid argument {v:?} for {flag:?} flag: bad format of filter (expected name=value)"
            )));
        };
        let entry = filters.entry(name.trim().to_lowercase()).or_default();
        let value = value.trim().to_string();
        if !entry.contains(&value) {
            entry.push(value);
        }
    }
    Ok(filters)
}

/// An I/O error worded as Go's `*PathError` ("open x: no such file or directory").
pub fn path_error(op: &str, path: &str, err: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("{op} {path}: {}", go_errno_text(err))
}

fn go_errno_text(err: &std::io::Error) -> String {
    let text = match err.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => err.to_string(),
    };
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `POST {path}` of a prune endpoint with docker's `filters` query; the
/// daemon's report, decoded.
pub async fn post_prune<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    filters: &HashMap<String, Vec<String>>,
) -> Result<T> {
    use http_body_util::BodyExt as _;
    let mut query = Vec::new();
    if !filters.is_empty() {
        query.push(("filters", ps::filters_json(filters)));
    }
    let resp = client
        .request(
            hyper::Method::POST,
            path,
            &query,
            &[],
            crate::client::empty_body(),
        )
        .await?;
    let raw = resp.into_body().collect().await?.to_bytes();
    crate::client::decode(&raw)
}

/// Docker's prune report: `Deleted KIND:` and the IDs (when any), then the
/// space reclaimed (counted only when something was deleted).
pub fn print_prune_report(kind: &str, deleted: &[String], space_reclaimed: u64) {
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        let mut text = format!("Deleted {kind}:\n");
        for id in deleted {
            text.push_str(id);
            text.push('\n');
        }
        println!("{text}");
        reclaimed = space_reclaimed;
    }
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(reclaimed as f64)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_errors_like_docker() {
        assert_eq!(
            parse_ref("Bad").unwrap_err(),
            "invalid reference format: repository name (library/Bad) must be lowercase"
        );
        assert_eq!(
            parse_ref("127.0.0.1:5000/Foo").unwrap_err(),
            "invalid reference format: repository name (Foo) must be lowercase"
        );
        assert_eq!(parse_ref("a::b").unwrap_err(), "invalid reference format");
    }

    #[test]
    fn filters() {
        let f = parse_filters(
            &crate::usage::IMAGES,
            "-f, --filter",
            &["Dangling = true".into()],
        )
        .unwrap();
        assert_eq!(f["dangling"], vec!["true".to_string()]);
        let e =
            parse_filters(&crate::usage::IMAGES, "-f, --filter", &["bogus".into()]).unwrap_err();
        assert!(e.to_string().starts_with(
            "invalid argument \"bogus\" for \"-f, --filter\" flag: bad format of filter (expected name=value)\n\nUsage:  servin images"
        ));
    }

    #[test]
    fn go_style_io_errors() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            path_error("open", "/nonexist", &e).to_string(),
            "open /nonexist: no such file or directory"
        );
    }
}
