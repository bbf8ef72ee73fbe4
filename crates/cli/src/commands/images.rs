//! `servin images` / `servin image ls`.

use anyhow::Result;
use bollard::models::ImageSummary;
use bollard::query_parameters::ListImagesOptions;
use chrono::Utc;

use super::{parse_filters, Ctx};
use crate::format::json::{StructValue, Value};
use crate::format::{self, list};
use crate::usage::{StatusError, Usage, BIN};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long)]
    format: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    args: Vec<String>,
}

const DEFAULT_FORMAT: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";
const DEFAULT_FORMAT_DIGEST: &str = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.max_args(&args.args, 1)?;
    let mut filters = parse_filters(usage, "-f, --filter", &args.filter)?;
    let match_name = args.args.first().cloned().unwrap_or_default();
    if !match_name.is_empty() {
        filters
            .entry("reference".into())
            .or_default()
            .push(match_name.clone());
    }
    let client = ctx.client().await?;
    let options = ListImagesOptions {
        all: args.all,
        filters: Some(filters),
        ..Default::default()
    };
    let images = client
        .docker
        .list_images(Some(options))
        .await
        .map_err(|e| client.err(e))?;

    let format = image_format(
        args.format.as_deref().unwrap_or(list::TABLE_KEY),
        args.quiet,
        args.digests,
    );
    let opts = RowOptions {
        trunc: !args.no_trunc,
        show_digests: args.digests,
        need_digest: args.digests || format.contains("{{.Digest}}"),
    };
    let now = Utc::now();
    let rows: Vec<Value> = images
        .iter()
        .flat_map(|img| rows_for(img, &opts, now))
        .collect();
    let out = list::render(&format, &rows, &header()).map_err(|e| StatusError::fail(1, e))?;
    print!("{out}");
    if !match_name.is_empty() && images.is_empty() && usage.path == "images" {
        print_ambiguous_hint(&match_name);
    }
    Ok(())
}

/// Docker's `NewImageFormat`.
fn image_format(source: &str, quiet: bool, digests: bool) -> String {
    match source {
        list::TABLE_KEY if quiet => "{{.ID}}".to_string(),
        list::TABLE_KEY if digests => DEFAULT_FORMAT_DIGEST.to_string(),
        list::TABLE_KEY => DEFAULT_FORMAT.to_string(),
        other
            if other.starts_with(list::TABLE_KEY) && digests && !other.contains("{{.Digest}}") =>
        {
            format!("{other}\t{{{{.Digest}}}}")
        }
        other => other.to_string(),
    }
}

/// `servin images ls` lists images named "ls": point at `image ls`.
fn print_ambiguous_hint(name: &str) {
    const SUBCOMMANDS: &[&str] = &[
        "build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push",
        "rm", "save", "tag",
    ];
    if SUBCOMMANDS.contains(&name) {
        eprintln!("\nNo images found matching {name:?}: did you mean \"{BIN} image {name}\"?");
    }
}

struct RowOptions {
    trunc: bool,
    show_digests: bool,
    need_digest: bool,
}

fn header() -> Value {
    let h = |k: &str, v: &str| (k.to_string(), Value::str(v));
    Value::Object(vec![
        h("ID", "IMAGE ID"),
        h("Repository", "REPOSITORY"),
        h("Tag", "TAG"),
        h("Digest", "DIGEST"),
        h("CreatedSince", "CREATED"),
        h("CreatedAt", "CREATED AT"),
        h("Size", "SIZE"),
        h("Containers", "CONTAINERS"),
        h("VirtualSize", "SIZE"),
        h("SharedSize", "SHARED SIZE"),
        h("UniqueSize", "UNIQUE SIZE"),
    ])
}

fn is_dangling(img: &ImageSummary) -> bool {
    (img.repo_tags.is_empty() && img.repo_digests.is_empty())
        || (img.repo_tags == ["<none>:<none>"] && img.repo_digests == ["<none>@<none>"])
}

/// One row per repository:tag (and per digest when shown), as docker's
/// `imageFormat`; tag order follows the daemon's `RepoTags`.
fn rows_for(img: &ImageSummary, opts: &RowOptions, now: chrono::DateTime<Utc>) -> Vec<Value> {
    let row =
        |repo: &str, tag: &str, digest: &str| image_row(img, opts.trunc, repo, tag, digest, now);
    if is_dangling(img) {
        return vec![row("<none>", "<none>", "<none>")];
    }
    let mut tags: Vec<(String, Vec<String>)> = Vec::new();
    for r in img
        .repo_tags
        .iter()
        .filter_map(|s| servin_api::ImageRef::parse(s).ok())
    {
        if let Some(tag) = r.tag() {
            push_grouped(&mut tags, r.familiar_repository(), tag.to_string());
        }
    }
    let mut digests: Vec<(String, Vec<String>)> = Vec::new();
    for r in img
        .repo_digests
        .iter()
        .filter_map(|s| servin_api::ImageRef::parse(s).ok())
    {
        if let Some(d) = r.digest() {
            push_grouped(&mut digests, r.familiar_repository(), d.to_string());
        }
    }
    let mut rows = Vec::new();
    for (repo, repo_tags) in &tags {
        let repo_digests = match digests.iter().position(|(r, _)| r == repo) {
            Some(i) => digests.remove(i).1,
            None => Vec::new(),
        };
        for tag in repo_tags {
            if !opts.need_digest || repo_digests.is_empty() {
                rows.push(row(repo, tag, "<none>"));
            } else {
                rows.extend(repo_digests.iter().map(|d| row(repo, tag, d)));
            }
        }
    }
    for (repo, repo_digests) in &digests {
        if opts.show_digests {
            rows.extend(repo_digests.iter().map(|d| row(repo, "<none>", d)));
        } else {
            rows.push(row(repo, "<none>", ""));
        }
    }
    rows
}

fn push_grouped(groups: &mut Vec<(String, Vec<String>)>, key: String, value: String) {
    match groups.iter_mut().find(|(k, _)| *k == key) {
        Some((_, values)) => values.push(value),
        None => groups.push((key, vec![value])),
    }
}

/// Docker's `imageContext` for one row.
fn image_row(
    img: &ImageSummary,
    trunc: bool,
    repo: &str,
    tag: &str,
    digest: &str,
    now: chrono::DateTime<Utc>,
) -> Value {
    let id = if trunc {
        format::short_id(&img.id)
    } else {
        &img.id
    };
    let na_or = |n: i64, f: &dyn Fn(i64) -> String| if n == -1 { "N/A".to_string() } else { f(n) };
    let unique = if img.size == -1 || img.shared_size == -1 {
        "N/A".to_string()
    } else {
        format::human_size((img.size - img.shared_size) as f64)
    };
    let fields = vec![
        (
            "Containers",
            Value::String(na_or(img.containers, &|n| n.to_string())),
        ),
        (
            "CreatedAt",
            Value::String(format::go_time_string(img.created)),
        ),
        (
            "CreatedSince",
            Value::String(format::since(img.created, now)),
        ),
        ("Digest", Value::str(digest)),
        ("ID", Value::str(id)),
        ("Repository", Value::str(repo)),
        (
            "SharedSize",
            Value::String(na_or(img.shared_size, &|n| format::human_size(n as f64))),
        ),
        (
            "Size",
            Value::String(format::human_size_with_precision(img.size as f64, 3)),
        ),
        ("Tag", Value::str(tag)),
        ("UniqueSize", Value::String(unique)),
        (
            "VirtualSize",
            Value::String(format::human_size(img.size as f64)),
        ),
    ];
    Value::Struct(Box::new(StructValue {
        type_name: "*formatter.imageContext",
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        sorted_json: true,
        json: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn summary(tags: &[&str], digests: &[&str]) -> ImageSummary {
        ImageSummary {
            id: "sha256:a3ebfb9f84a77a02a94420d9eaa006b6292c383505fa438aa649c8a7f2468013".into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            created: 1_000,
            size: 1_982_291,
            shared_size: -1,
            containers: -1,
            ..Default::default()
        }
    }

    fn table(images: &[ImageSummary], format: &str, opts: &RowOptions) -> String {
        let now = Utc.timestamp_opt(1_000 + 7200, 0).unwrap();
        let rows: Vec<Value> = images.iter().flat_map(|i| rows_for(i, opts, now)).collect();
        list::render(format, &rows, &header()).unwrap()
    }

    const PLAIN: RowOptions = RowOptions {
        trunc: true,
        show_digests: false,
        need_digest: false,
    };

    #[test]
    fn default_table() {
        let images = [
            summary(&["busybox:1.36", "busybox:latest"], &[]),
            summary(&[], &[]),
            summary(&["127.0.0.1:5055/busybox:latest"], &["127.0.0.1:5055/busybox@sha256:6b4b630faba42c25a3a09c79980c5fb5533a813c882ae75037b08abdbcc093b8"]),
        ];
        let want = "\
REPOSITORY               TAG       IMAGE ID       CREATED       SIZE
busybox                  1.36      a3ebfb9f84a7   2 hours ago   1.98MB
busybox                  latest    a3ebfb9f84a7   2 hours ago   1.98MB
<none>                   <none>    a3ebfb9f84a7   2 hours ago   1.98MB
127.0.0.1:5055/busybox   latest    a3ebfb9f84a7   2 hours ago   1.98MB
";
        assert_eq!(
            table(&images, &image_format("table", false, false), &PLAIN),
            want
        );
        let ids = table(&images, &image_format("table", true, false), &PLAIN);
        assert_eq!(ids.lines().count(), 4);
        assert!(ids.lines().all(|l| l == "a3ebfb9f84a7"));
    }

    #[test]
    fn digests_column() {
        let d = "sha256:6b4b630faba42c25a3a09c79980c5fb5533a813c882ae75037b08abdbcc093b8";
        let images = [
            summary(&["reg:5000/bb:1"], &[&format!("reg:5000/bb@{d}")]),
            summary(&[], &[&format!("other@{d}")]),
        ];
        let opts = RowOptions {
            trunc: true,
            show_digests: true,
            need_digest: true,
        };
        let out = table(
            &images,
            &image_format("table {{.Repository}}\t{{.Tag}}", false, true),
            &opts,
        );
        assert_eq!(
            out,
            format!("REPOSITORY    TAG       DIGEST\nreg:5000/bb   1         {d}\nother         <none>    {d}\n")
        );
    }

    #[test]
    fn json_rows() {
        let out = table(&[summary(&[], &[])], "{{json .}}", &PLAIN);
        assert!(
            out.starts_with(r#"{"Containers":"N/A","CreatedAt":"#),
            "{out}"
        );
        assert!(out.contains(r#""Digest":"\u003cnone\u003e","ID":"a3ebfb9f84a7","Repository":"\u003cnone\u003e","SharedSize":"N/A","Size":"1.98MB","Tag":"\u003cnone\u003e","UniqueSize":"N/A","VirtualSize":"1.982MB"}"#), "{out}");
    }
}
