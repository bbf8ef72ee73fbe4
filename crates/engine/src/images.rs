//! Image operations in Docker's terms, over the image store.

use std::collections::HashMap;

use serde_json::{json, Value};
use servin_api::{Digest, Error, ImageRef};
use servin_image::pull::{self, PullOutcome, PullRequest};
use servin_image::{Credentials, DeleteItem, ImageRecord, Platform, ProgressSink};

use crate::{Engine, Event};

/// One `filters` term of `GET /images/json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFilter {
    Dangling(bool),
    Reference(String),
    Label(String, Option<String>),
    Before(String),
    Since(String),
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub digests: bool,
    pub filters: Vec<ImageFilter>,
}

impl ImageFilter {
    /// Parses Docker's `filters` JSON (`{"dangling":["true"]}` or the old
    /// `{"dangling":{"true":true}}` form).
    pub fn parse_all(filters: &str) -> Result<Vec<Self>, Error> {
        let f = crate::filters::Filters::parse(filters)?;
        let mut out = Vec::new();
        for key in f.keys() {
            for val in f.values(&key) {
                out.push(match key.as_str() {
                    "dangling" => match val.as_str() {
                        "true" | "1" => ImageFilter::Dangling(true),
                        "false" | "0" => ImageFilter::Dangling(false),
                        _ => {
                            return Err(Error::invalid(format!("invalid filter 'dangling={val}'")))
                        }
                    },
                    "reference" => ImageFilter::Reference(val),
                    "label" => match val.split_once('=') {
                        Some((k, v)) => ImageFilter::Label(k.into(), Some(v.into())),
                        None => ImageFilter::Label(val, None),
                    },
                    "before" => ImageFilter::Before(val),
                    "since" => ImageFilter::Since(val),
                    other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
                });
            }
        }
        Ok(out)
    }
}

fn familiar(full: &str) -> String {
    ImageRef::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// Shell-style match of `pattern` against `name` (`*` stays within a path segment, as Go's path.Match).
fn glob_match(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(pattern)
        .map(|p| {
            p.matches_with(
                name,
                glob::MatchOptions {
                    case_sensitive: true,
                    require_literal_separator: true,
                    require_literal_leading_dot: false,
                },
            )
        })
        .unwrap_or(false)
}

fn created_unix(config: &Value) -> i64 {
    config
        .get("created")
        .and_then(|c| c.as_str())
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

impl Engine {
    /// `GET /images/json`.
    pub fn list_images(&self, opts: &ListOptions) -> Result<Vec<Value>, Error> {
        let store = self.image_store();
        let all = store.list();
        let anchor = |name: &str| -> Result<i64, Error> {
            let r = store.resolve(name)?;
            Ok(created_unix(&store.config(&r.id)?))
        };
        let mut out = Vec::new();
        'images: for (record, tags) in all {
            let config = store.config(&record.id)?;
            let created = created_unix(&config);
            let tags: Vec<String> = tags.iter().map(|t| familiar(t)).collect();
            let labels: HashMap<String, String> = config
                .pointer("/config/Labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            for f in &opts.filters {
                let keep = match f {
                    ImageFilter::Dangling(d) => {
                        (tags.is_empty() && record.repo_digests.is_empty()) == *d
                    }
                    ImageFilter::Reference(p) => tags.iter().any(|t| {
                        glob_match(p, t)
                            || t.rsplit_once(':')
                                .is_some_and(|(repo, _)| glob_match(p, repo))
                    }),
                    ImageFilter::Label(k, v) => match v {
                        Some(v) => labels.get(k) == Some(v),
                        None => labels.contains_key(k),
                    },
                    ImageFilter::Before(n) => created < anchor(n)?,
                    ImageFilter::Since(n) => created > anchor(n)?,
                };
                if !keep {
                    continue 'images;
                }
            }
            out.push(json!({
                "Id": record.id.to_string(),
                "ParentId": "",
                "RepoTags": tags,
                "RepoDigests": record.repo_digests.iter().map(|d| familiar(d)).collect::<Vec<_>>(),
                "Created": created,
                "Size": record.size(),
                "SharedSize": -1,
                "VirtualSize": record.size(),
                "Labels": labels,
                "Containers": -1,
            }));
        }
        out.sort_by_key(|v| std::cmp::Reverse(v["Created"].as_i64().unwrap_or(0)));
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub fn inspect_image(&self, name: &str) -> Result<Value, Error> {
        let store = self.image_store();
        let record = store.resolve(name)?;
        let config = store.config(&record.id)?;
        Ok(inspect_json(
            &record,
            &store.tags_of(&record.id),
            &config,
            store,
        ))
    }

    /// `POST /images/create?fromImage=…`: pulls, streaming progress.
    pub async fn pull_image(
        &self,
        reference: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        credentials: Credentials,
        progress: &ProgressSink,
    ) -> Result<PullOutcome, Error> {
        let mut r = ImageRef::parse(reference).map_err(|e| Error::invalid(e.to_string()))?;
        if let Some(t) = tag.filter(|t| !t.is_empty()) {
            r = if t.starts_with("sha256:") {
                r.with_digest(
                    t.parse()
                        .map_err(|e: servin_api::DigestError| Error::invalid(e.to_string()))?,
                )
            } else {
                r.with_tag(t).map_err(|e| Error::invalid(e.to_string()))?
            };
        }
        let r = r.with_default_tag();
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => Some(Platform::parse(p)?),
            None => None,
        };
        let req = PullRequest {
            reference: r.clone(),
            platform,
            credentials,
        };
        let outcome = pull::pull(
            self.image_store(),
            &self.config().registries,
            &req,
            progress,
        )
        .await?;
        self.emit(Event::image("pull", &r.familiar(), Some(&r.familiar())));
        Ok(outcome)
    }

    /// `POST /images/{name}/tag`.
    pub fn tag_image(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<(), Error> {
        let target = ImageRef::parse(repo).map_err(|e| Error::invalid(e.to_string()))?;
        if target.digest().is_some() {
            return Err(Error::invalid(
                "refusing to create a tag with a digest reference",
            ));
        }
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => target
                .with_tag(t)
                .map_err(|e| Error::invalid(e.to_string()))?,
            None => target.with_default_tag(),
        };
        let store = self.image_store();
        store.tag(source, &target)?;
        let id = store.resolve(&target.to_string())?.id;
        self.emit(Event::image(
            "tag",
            &id.to_string(),
            Some(&target.familiar()),
        ));
        Ok(())
    }

    /// `DELETE /images/{name}`.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<Value>, Error> {
        let items = self
            .image_store()
            .remove(name, force, &|id| self.image_user(id))?;
        Ok(self.delete_items(items))
    }

    fn delete_items(&self, items: Vec<DeleteItem>) -> Vec<Value> {
        items
            .into_iter()
            .map(|i| match i {
                DeleteItem::Untagged(n) => {
                    self.emit(Event::image("untag", &n, None));
                    json!({"Untagged": n})
                }
                DeleteItem::Deleted(d) => {
                    self.emit(Event::image("delete", &d.to_string(), None));
                    json!({"Deleted": d.to_string()})
                }
            })
            .collect()
    }

    /// `POST /images/prune`.
    pub fn prune_images(&self, filters: &str) -> Result<Value, Error> {
        let filters = ImageFilter::parse_all(filters)?;
        let mut all = false;
        for f in &filters {
            match f {
                ImageFilter::Dangling(d) => all = !d,
                other => {
                    return Err(Error::invalid(format!(
                        "invalid filter for prune: {other:?}"
                    )))
                }
            }
        }
        let (items, reclaimed) = self.image_store().prune(all, &|id| self.image_user(id))?;
        let deleted = self.delete_items(items);
        Ok(
            json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) }, "SpaceReclaimed": reclaimed}),
        )
    }

    /// The image record and parsed config for a name, for other subsystems.
    pub fn image(&self, name: &str) -> Result<(ImageRecord, Value), Error> {
        let store = self.image_store();
        let r = store.resolve(name)?;
        let c = store.config(&r.id)?;
        Ok((r, c))
    }

    pub fn image_id(&self, name: &str) -> Result<Digest, Error> {
        Ok(self.image_store().resolve(name)?.id)
    }
}

fn inspect_json(
    record: &ImageRecord,
    tags: &[String],
    config: &Value,
    store: &servin_image::ImageStore,
) -> Value {
    let layers: Vec<String> = record
        .layers
        .iter()
        .map(|l| l.diff_id.to_string())
        .collect();
    let lower: Vec<String> = record
        .layers
        .iter()
        .rev()
        .map(|l| store.snapshots().path(&l.diff_id).display().to_string())
        .collect();
    let s = |k: &str| {
        config
            .get(k)
            .cloned()
            .unwrap_or(Value::String(String::new()))
    };
    json!({
        "Id": record.id.to_string(),
        "RepoTags": tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": record.repo_digests.iter().map(|d| familiar(d)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": s("comment"),
        "Created": config.get("created").cloned().unwrap_or(Value::String("0001-01-01T00:00:00Z".into())),
        "DockerVersion": s("docker_version"),
        "Author": s("author"),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": s("architecture"),
        "Variant": config.get("variant").cloned(),
        "Os": s("os"),
        "Size": record.size(),
        "GraphDriver": {
            "Name": "overlayfs",
            "Data": {"LowerDir": lower.join(":")},
        },
        "RootFS": {"Type": "layers", "Layers": layers},
        "Metadata": {"LastTagTime": record.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())},
    })
}

impl Engine {
    /// `POST /auth`: checks credentials with the registry. The client keeps them.
    pub async fn login(&self, server: &str, credentials: Credentials) -> Result<Value, Error> {
        servin_image::registry::login(&self.config().registries, server, &credentials)
            .await
            .map_err(|e| match e {
                servin_image::StoreError::Unauthorized(m) => {
                    Error::new(servin_api::ErrorKind::Unauthorized, m)
                }
                other => other.into(),
            })?;
        Ok(json!({"Status": "Login Succeeded", "IdentityToken": ""}))
    }
}
