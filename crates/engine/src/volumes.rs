//! Local volumes: `volumes/<name>/_data`, with `volumes/<name>/volume.json`
//! holding what Docker reports (labels, options, creation time).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use servin_api::Error;

use crate::Engine;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeMeta {
    created_at: String,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
    /// Created for a container's anonymous mount.
    anonymous: bool,
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl Engine {
    fn volumes_root(&self) -> PathBuf {
        self.config().data_root.join("volumes")
    }

    /// Creates (or returns) a volume and its data directory.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        driver: Option<&str>,
        options: BTreeMap<String, String>,
    ) -> Result<Value, Error> {
        if let Some(d) = driver.filter(|d| !d.is_empty() && *d != "local") {
            return Err(Error::not_found(format!("plugin \"{d}\" not found")));
        }
        if let Some(o) = options.keys().next() {
            return Err(Error::invalid(format!("invalid option: \"{o}\"")));
        }
        let (name, anonymous) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (n.to_string(), false),
            None => (crate::containers::new_id(), true),
        };
        self.make_volume(&name, anonymous, labels, options)?;
        self.inspect_volume(&name)
    }

    /// Creates the volume `name` unless it exists.
    fn make_volume(
        &self,
        name: &str,
        anonymous: bool,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        if !valid_name(name) {
            return Err(Error::invalid(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        let dir = self.volumes_root().join(name);
        let meta_path = dir.join("volume.json");
        if !meta_path.exists() {
            std::fs::create_dir_all(dir.join("_data"))
                .map_err(|e| Error::internal(format!("Cannot create volume {name}: {e}")))?;
            let meta = VolumeMeta {
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                labels,
                options,
                anonymous,
            };
            servin_image::meta::write_atomic(
                &meta_path,
                &serde_json::to_vec_pretty(&meta).expect("json"),
            )?;
            self.emit(crate::Event::volume("create", name));
        }
        Ok(())
    }

    /// The data directory of a named volume, creating the volume if needed.
    pub(crate) fn volume_data(&self, name: &str) -> Result<PathBuf, Error> {
        self.make_volume(name, false, BTreeMap::new(), BTreeMap::new())?;
        Ok(self.volume_path(name))
    }

    /// The data directory of a container's anonymous volume (`-v /dir`,
    /// `--mount type=volume` without a source), created once, marked
    /// anonymous for `volume prune` and `rm -v`.
    pub(crate) fn anonymous_volume_data(&self, name: &str) -> Result<PathBuf, Error> {
        self.make_volume(name, true, BTreeMap::new(), BTreeMap::new())?;
        Ok(self.volume_path(name))
    }

    /// Where a volume's data is (whether or not it exists).
    pub(crate) fn volume_path(&self, name: &str) -> PathBuf {
        self.volumes_root().join(name).join("_data")
    }

    fn volume_meta(&self, name: &str) -> Result<VolumeMeta, Error> {
        let path = self.volumes_root().join(name).join("volume.json");
        let bytes = std::fs::read(&path)
            .map_err(|_| Error::not_found(format!("get {name}: no such volume")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("Volume {name} metadata is corrupt: {e}")))
    }

    pub fn inspect_volume(&self, name: &str) -> Result<Value, Error> {
        if !valid_name(name) {
            return Err(Error::not_found(format!("get {name}: no such volume")));
        }
        let meta = self.volume_meta(name)?;
        Ok(json!({
            "CreatedAt": meta.created_at,
            "Driver": "local",
            "Labels": meta.labels,
            "Mountpoint": self.volumes_root().join(name).join("_data"),
            "Name": name,
            "Options": meta.options,
            "Scope": "local",
        }))
    }

    fn volume_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.volumes_root()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join("volume.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `GET /volumes` with `name`, `label` and `dangling` filters.
    pub fn list_volumes(&self, filters: &str) -> Result<Value, Error> {
        let f = crate::filters::Filters::parse(filters)?;
        let values = |k: &str| f.values(k);
        let mut out = Vec::new();
        for name in self.volume_names() {
            let v = self.inspect_volume(&name)?;
            if !values("name").iter().all(|n| name.contains(n.as_str())) {
                continue;
            }
            if !f.match_labels(&v["Labels"]) {
                continue;
            }
            if let Some(d) = values("dangling").first() {
                let dangling = self.volume_users(&name).is_empty();
                if (d == "true" || d == "1") != dangling {
                    continue;
                }
            }
            out.push(v);
        }
        Ok(json!({"Volumes": out, "Warnings": []}))
    }

    /// Containers whose mounts use the volume.
    fn volume_users(&self, name: &str) -> Vec<String> {
        self.containers_using_volume(name)
    }

    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), Error> {
        if self.volume_meta(name).is_err() {
            if force {
                return Ok(());
            }
            return Err(Error::not_found(format!("get {name}: no such volume")));
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        let dir = self.volumes_root().join(name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::internal(format!("Cannot remove volume {name}: {e}")))?;
        self.emit(crate::Event::volume("destroy", name));
        Ok(())
    }

    /// `POST /volumes/prune`: unused anonymous volumes, or all unused with `all=true`.
    pub fn prune_volumes(&self, filters: &str) -> Result<Value, Error> {
        let f = crate::filters::Filters::parse(filters)?;
        f.accept_only(&["label", "label!", "all"])?;
        let all = f.values("all").iter().any(|x| x == "true" || x == "1");
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for name in self.volume_names() {
            let meta = self.volume_meta(&name)?;
            let labels = serde_json::to_value(&meta.labels).unwrap_or_default();
            if (all || meta.anonymous)
                && f.match_labels(&labels)
                && self.volume_users(&name).is_empty()
            {
                reclaimed += servin_image::dir_size(&self.volumes_root().join(&name));
                self.remove_volume(&name, false)?;
                deleted.push(name);
            }
        }
        Ok(json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}))
    }
}
