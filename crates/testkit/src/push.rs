//! Pushing fixtures with `skopeo`, which shares no code with ours.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::http::{self, Request};
use crate::Fixture;

/// Manifest format written to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// As built: OCI image manifest or OCI image index.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 (`--format v2s2`); an index becomes
    /// a Docker manifest list. zstd layers cannot be converted.
    V2s2,
}

/// Pushes the fixture unconverted to `dest` (`127.0.0.1:PORT/name:tag`, no
/// scheme), over plain HTTP.
pub fn push(fixture: &Fixture, dest: &str) -> Result<()> {
    push_with(fixture, dest, Format::Oci, None)
}

/// Pushes with a manifest format and optional registry credentials
/// (`user`, `password`).
pub fn push_with(
    fixture: &Fixture,
    dest: &str,
    format: Format,
    creds: Option<(&str, &str)>,
) -> Result<()> {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
    ]);
    if fixture.is_index() {
        cmd.arg("--all");
    }
    if format == Format::V2s2 {
        cmd.args(["--format", "v2s2"]);
    }
    if let Some((user, pass)) = creds {
        cmd.arg(format!("--dest-creds={user}:{pass}"));
    }
    // An empty auth file keeps the user's registry logins out of the test.
    let auth_dir = crate::temp_dir("skopeo-auth")?;
    let auth_file = auth_dir.path().join("auth.json");
    std::fs::write(&auth_file, "{}")?;
    cmd.arg(format!("--dest-authfile={}", auth_file.display()));
    cmd.arg(fixture.oci_ref()).arg(format!("docker://{dest}"));
    let out = cmd
        .output()
        .context("Cannot run skopeo (apt-get install skopeo)")?;
    if !out.status.success() {
        bail!(
            "skopeo copy to {dest} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Pushes the fixture byte for byte over plain HTTP with the registry API
/// itself (monolithic blob uploads, then manifests), for what skopeo would
/// rewrite: it always compresses uncompressed layers on the way to a
/// registry. `dest` is `HOST:PORT/REPO:TAG`.
pub fn push_raw(fixture: &Fixture, dest: &str, creds: Option<(&str, &str)>) -> Result<()> {
    let (addr, rest) = dest
        .split_once('/')
        .with_context(|| format!("{dest} is not HOST:PORT/REPO:TAG"))?;
    let (repo, tag) = rest
        .rsplit_once(':')
        .with_context(|| format!("{dest} has no tag"))?;
    let auth = creds.map(|(user, pass)| {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {token}")
    });
    let send = |method: &'static str, path: &str, content_type: &str, body: &[u8]| {
        let mut req = Request {
            method,
            path,
            headers: vec![("Content-Type", content_type.to_string())],
            body,
        };
        if let Some(auth) = &auth {
            req = req.header("Authorization", auth.clone());
        }
        http::tcp(addr, &req, Duration::from_secs(120))
    };

    let mut blobs: Vec<&str> = Vec::new();
    for image in fixture.images() {
        blobs.extend(image.layers.iter().map(|l| l.digest.as_str()));
        blobs.push(&image.config_digest);
    }
    blobs.sort_unstable();
    blobs.dedup();
    for digest in blobs {
        let start = send(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            "application/octet-stream",
            &[],
        )?;
        if start.status != 202 {
            bail!(
                "Starting an upload to {dest} got {}: {}",
                start.status,
                start.text()
            );
        }
        let location = start.header("location").context("Upload has no Location")?;
        // The registry answers with an absolute URL; keep path and query.
        let location = location
            .find("/v2/")
            .map(|i| &location[i..])
            .unwrap_or(location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let body = std::fs::read(fixture.blob_path(digest))?;
        let put = send(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            "application/octet-stream",
            &body,
        )?;
        if put.status != 201 {
            bail!(
                "Uploading {digest} to {dest} got {}: {}",
                put.status,
                put.text()
            );
        }
    }

    let mut manifests: Vec<(String, &str, String)> = fixture
        .images()
        .iter()
        .filter(|_| fixture.is_index())
        .map(|i| {
            (
                i.manifest_digest.clone(),
                MANIFEST,
                i.manifest_digest.clone(),
            )
        })
        .collect();
    manifests.push((
        fixture.digest().to_string(),
        fixture.media_type(),
        tag.to_string(),
    ));
    for (digest, media_type, reference) in manifests {
        let body = std::fs::read(fixture.blob_path(&digest))?;
        let put = send(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            media_type,
            &body,
        )?;
        if put.status != 201 {
            bail!(
                "Putting manifest {reference} to {dest} got {}: {}",
                put.status,
                put.text()
            );
        }
    }
    Ok(())
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
