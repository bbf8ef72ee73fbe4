//! `servin create` / `servin container create`, and the create step that
//! `run` shares: pull when the image is missing, create, report warnings.

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Method;
use serde::Deserialize;
use servin_api::ImageRef;

use super::pull::pull_image;
use super::{parse_ref, Ctx};
use crate::client::{ApiError, Client};
use crate::opts::body::CreateRequest;
use crate::opts::{ContainerFlags, ParseError};
use crate::progress::Display;
use crate::usage::Usage;

/// Flags of `create` (and `run`) that are not part of the container's
/// configuration.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct CreateFlags {
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Pull image before creating ("always", "missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Skip image verification
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub disable_content_trust: bool,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub create: CreateFlags,
    #[command(flatten)]
    pub flags: ContainerFlags,
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    let request = prepare(usage, &args.create, &args.flags, &args.args)?;
    let client = ctx.client().await?;
    check_api(client, &args.flags)?;
    let id = create(client, request, &args.create).await?;
    println!("{id}");
    Ok(())
}

/// Checks the arguments and turns the flags into the create body, with
/// docker's errors (a flag's usage error, or `servin: …` and `--help`).
pub fn prepare(
    usage: &Usage,
    create: &CreateFlags,
    flags: &ContainerFlags,
    args: &[String],
) -> Result<CreateRequest> {
    usage.reject_flag(args.first())?;
    usage.min_args(args, 1)?;
    if !matches!(create.pull.as_str(), "always" | "missing" | "never" | "") {
        return Err(usage.with_help(&format!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            create.pull
        )));
    }
    let lookup = |k: &str| std::env::var(k).ok();
    flags
        .to_request(&args[0], &args[1..], &lookup)
        .map_err(|e| match e {
            ParseError::Flag(m) => usage.flag_error(&m),
            ParseError::Invalid(m) => usage.with_help(&m),
        })
}

/// Flags newer than the daemon's API are refused, as docker's flag
/// annotations make it refuse them.
pub fn check_api(client: &Client, flags: &ContainerFlags) -> Result<()> {
    let used = [
        ("--annotation", 43, !flags.annotation.is_empty()),
        (
            "--health-start-interval",
            44,
            flags.health_start_interval.is_some(),
        ),
    ];
    for (flag, minor, set) in used {
        if set && !client.api_at_least(minor) {
            anyhow::bail!(
                "\"{flag}\" requires API version 1.{minor}, but the Servin daemon API version is {}",
                client.api_version()
            );
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Created {
    #[serde(rename = "Id")]
    id: String,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

/// Docker's `createContainer`: the ID file, `--pull`, the create call, a
/// pull and retry when the image is missing, and the daemon's warnings.
pub async fn create(
    client: &Client,
    mut request: CreateRequest,
    opts: &CreateFlags,
) -> Result<String> {
    let cid_path = request.host_config.container_id_file.clone();
    let _cid = CidFile::create(&cid_path)?;
    let image = request.config.image.clone();
    let named = named_reference(&image)?;
    let platform = opts
        .platform
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(normalize_platform);
    if opts.pull == "always" {
        if let Some(r) = &named {
            pull(client, r, platform.as_deref(), opts.quiet).await?;
        }
    }
    request.host_config.console_size = crate::tty::size();
    // As the docker client: Linux daemons before API 1.42 ignore the size
    // when a platform is asked for.
    if platform.as_deref().is_some_and(|p| p.starts_with("linux")) && !client.api_at_least(42) {
        request.host_config.console_size = [0, 0];
    }
    let mut query = Vec::new();
    if let Some(name) = opts.name.as_ref().filter(|n| !n.is_empty()) {
        query.push(("name", name.clone()));
    }
    if let Some(p) = &platform {
        query.push(("platform", p.clone()));
    }
    query.sort_by_key(|(k, _)| *k);
    let body = Bytes::from(request.to_json());
    let created = match post_create(client, &query, body.clone()).await {
        Err(e) if ApiError::is_not_found(&e) && named.is_some() && opts.pull == "missing" => {
            let r = named.as_ref().expect("checked above");
            if !opts.quiet {
                eprintln!("Unable to find image '{}' locally", r.familiar());
            }
            pull(client, r, platform.as_deref(), opts.quiet).await?;
            post_create(client, &query, body).await?
        }
        other => other?,
    };
    for w in created.warnings.unwrap_or_default() {
        eprintln!("WARNING: {w}");
    }
    if let Some(file) = _cid {
        file.write(&created.id)?;
    }
    Ok(created.id)
}

async fn post_create(client: &Client, query: &[(&str, String)], body: Bytes) -> Result<Created> {
    let resp = client
        .request(
            Method::POST,
            "/containers/create",
            query,
            &[("Content-Type", "application/json")],
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .await?;
    let bytes = resp.into_body().collect().await?.to_bytes();
    crate::client::decode(&bytes)
}

async fn pull(
    client: &Client,
    reference: &ImageRef,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let tag = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference.tag().unwrap_or_default().to_string(),
    };
    pull_image(
        client,
        reference,
        Some(tag),
        platform,
        Display::for_stderr(quiet),
    )
    .await
}

/// The image as a name with a tag (`busybox` → `busybox:latest`), or `None`
/// for an image ID, which is never pulled.
fn named_reference(image: &str) -> Result<Option<ImageRef>> {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Ok(None);
    }
    let r = parse_ref(image).map_err(anyhow::Error::msg)?;
    Ok(Some(if r.tag().is_none() && r.digest().is_none() {
        r.with_default_tag()
    } else {
        r
    }))
}

/// `containerd/platforms.Parse` then formatted back: `amd64` →
/// `linux/amd64`, `linux` → `linux/<this arch>`.
fn normalize_platform(p: &str) -> String {
    let p = p.to_lowercase();
    if p.contains('/') {
        return p;
    }
    if matches!(p.as_str(), "linux" | "windows" | "darwin" | "freebsd") {
        return format!("{p}/{}", crate::commands::version::go_arch());
    }
    format!("linux/{p}")
}

/// `--cidfile`: refused if it exists, removed again unless an ID was
/// written to it.
struct CidFile {
    path: String,
    written: std::cell::Cell<bool>,
}

impl CidFile {
    fn create(path: &str) -> Result<Option<CidFile>> {
        if path.is_empty() {
            return Ok(None);
        }
        if std::path::Path::new(path).exists() {
            anyhow::bail!(
                "container ID file found, make sure the other container isn't running or delete {path}"
            );
        }
        std::fs::File::create(path).map_err(|e| {
            anyhow::anyhow!(
                "failed to create the container ID file: {}",
                super::path_error("open", path, &e)
            )
        })?;
        Ok(Some(CidFile {
            path: path.to_string(),
            written: std::cell::Cell::new(false),
        }))
    }

    fn write(&self, id: &str) -> Result<()> {
        std::fs::write(&self.path, id)
            .map_err(|e| anyhow::anyhow!("failed to write the container ID to the file: {e}"))?;
        self.written.set(true);
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if !self.written.get() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_a_default_tag() {
        let r = named_reference("busybox").unwrap().unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert!(named_reference(&"a".repeat(64)).unwrap().is_none());
        assert_eq!(
            named_reference("Bad:x").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Bad) must be lowercase"
        );
    }

    #[test]
    fn platforms() {
        assert_eq!(normalize_platform("linux/amd64"), "linux/amd64");
        assert_eq!(normalize_platform("arm64"), "linux/arm64");
    }
}
