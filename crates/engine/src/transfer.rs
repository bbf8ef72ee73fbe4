//! Moving images in and out: push, load, save, import; and history.

use std::io::{Read, Write};

use serde_json::{json, Value};
use servin_api::{Digest, Error, ImageRef};
use servin_image::archive::{self, ImportOptions};
use servin_image::push;
use servin_image::{Credentials, Platform, ProgressSink};

use crate::{Engine, Event};

impl Engine {
    /// `POST /images/{name}/push`: pushes one tag, or every tag of the
    /// repository when neither the name nor `tag` gives one. Returns the
    /// closing `aux` lines.
    pub async fn push_image(
        &self,
        name: &str,
        tag: Option<&str>,
        credentials: Credentials,
        progress: &ProgressSink,
    ) -> Result<Vec<Value>, Error> {
        let base = ImageRef::parse(name).map_err(|e| Error::invalid(e.to_string()))?;
        let store = self.image_store();
        let targets: Vec<ImageRef> = match (tag, base.tag()) {
            (Some(t), _) => vec![base
                .with_tag(t)
                .map_err(|e| Error::invalid(e.to_string()))?],
            (None, Some(_)) => vec![base.clone()],
            (None, None) => {
                let repo = base.repository();
                let index = store.snapshot_index();
                index
                    .tags
                    .keys()
                    .filter_map(|t| ImageRef::parse(t).ok())
                    .filter(|r| r.repository() == repo)
                    .collect()
            }
        };
        if targets.is_empty() {
            return Err(Error::not_found(format!(
                "An image does not exist locally with the tag: {}",
                base.familiar_repository()
            )));
        }
        let mut aux = Vec::new();
        for target in targets {
            let record = store.resolve(&target.to_string()).map_err(|_| {
                Error::not_found(format!(
                    "An image does not exist locally with the tag: {}",
                    target.familiar()
                ))
            })?;
            let out = push::push(
                store,
                &self.config().registries,
                &target,
                &record,
                &credentials,
                progress,
            )
            .await?;
            let t = target.tag().unwrap_or("latest").to_string();
            progress.status(format!("{t}: digest: {} size: {}", out.digest, out.size));
            aux.push(json!({"progressDetail": {}, "aux": {"Tag": t, "Digest": out.digest.to_string(), "Size": out.size}}));
            self.emit(Event::image(
                "push",
                &target.familiar(),
                Some(&target.familiar()),
            ));
        }
        Ok(aux)
    }

    /// `POST /images/load`; blocking, call from a blocking thread.
    pub fn load_images(&self, reader: impl Read, progress: &ProgressSink) -> Result<(), Error> {
        let loaded = archive::load(self.image_store(), reader, progress)?;
        for img in loaded {
            let name = img.tags.first().map(|t| t.familiar());
            self.emit(Event::image("load", &img.id.to_string(), name.as_deref()));
        }
        Ok(())
    }

    /// `GET /images/get`; blocking.
    pub fn save_images(&self, names: &[String], writer: impl Write) -> Result<(), Error> {
        archive::save(self.image_store(), names, writer)?;
        for n in names {
            self.emit(Event::image("save", n, Some(n)));
        }
        Ok(())
    }

    /// `POST /images/create?fromSrc=-`; blocking.
    pub fn import_image(
        &self,
        reader: impl Read,
        repo: &str,
        tag: &str,
        changes: &[String],
        message: Option<&str>,
        platform: Option<&str>,
    ) -> Result<Digest, Error> {
        let tag_ref = if repo.is_empty() {
            None
        } else {
            let r = ImageRef::parse(repo).map_err(|e| Error::invalid(e.to_string()))?;
            Some(if tag.is_empty() {
                r.with_default_tag()
            } else {
                r.with_tag(tag).map_err(|e| Error::invalid(e.to_string()))?
            })
        };
        let opts = ImportOptions {
            tag: tag_ref.clone(),
            changes: changes
                .iter()
                .flat_map(|c| c.lines().map(str::to_string))
                .filter(|c| !c.trim().is_empty())
                .collect(),
            message: message.map(str::to_string),
            platform: platform.map(Platform::parse).transpose()?,
        };
        let id = archive::import(self.image_store(), reader, &opts)?;
        self.emit(Event::image(
            "import",
            &id.to_string(),
            tag_ref.map(|t| t.familiar()).as_deref(),
        ));
        Ok(id)
    }

    /// `GET /images/{name}/history`, from the config's `history`.
    pub fn image_history(&self, name: &str) -> Result<Value, Error> {
        let (record, config) = self.image(name)?;
        let tags: Vec<String> = self
            .image_store()
            .tags_of(&record.id)
            .iter()
            .filter_map(|t| ImageRef::parse(t).ok().map(|r| r.familiar()))
            .collect();
        let history = config
            .get("history")
            .and_then(|h| h.as_array())
            .cloned()
            .unwrap_or_default();
        let mut layer_sizes = record.layers.iter().map(|l| l.unpacked_size);
        let mut rows: Vec<Value> = history
            .iter()
            .map(|h| {
                let empty = h
                    .get("empty_layer")
                    .and_then(|e| e.as_bool())
                    .unwrap_or(false);
                let size = if empty {
                    0
                } else {
                    layer_sizes.next().unwrap_or(0)
                };
                let created = h
                    .get("created")
                    .and_then(|c| c.as_str())
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .map(|t| t.timestamp())
                    .unwrap_or(0);
                json!({
                    "Id": "<missing>",
                    "Created": created,
                    "CreatedBy": h.get("created_by").and_then(|c| c.as_str()).unwrap_or(""),
                    "Tags": null,
                    "Size": size,
                    "Comment": h.get("comment").and_then(|c| c.as_str()).unwrap_or(""),
                })
            })
            .collect();
        if rows.is_empty() {
            rows = record
                .layers
                .iter()
                .map(|l| json!({"Id": "<missing>", "Created": 0, "CreatedBy": "", "Tags": null, "Size": l.unpacked_size, "Comment": ""}))
                .collect();
        }
        rows.reverse();
        if let Some(first) = rows.first_mut() {
            first["Id"] = json!(record.id.to_string());
            first["Tags"] = json!(tags);
        }
        Ok(Value::Array(rows))
    }
}
