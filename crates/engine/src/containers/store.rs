//! The set of containers: in memory behind one lock, each persisted in its
//! own directory, with a name index. Records are written to disk (two
//! fsyncs) outside that lock, under a lock of their own container's, so
//! writes of different containers overlap instead of queueing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use servin_api::Error;

use super::record::{ContainerRecord, State};

/// How many locks order the writes of containers' records (one container
/// always maps to the same one).
const WRITE_LOCKS: usize = 64;

#[derive(Debug)]
pub struct ContainerStore {
    root: PathBuf,
    inner: Mutex<BTreeMap<String, ContainerRecord>>,
    writes: [Mutex<()>; WRITE_LOCKS],
}

impl ContainerStore {
    /// Loads every `containers/<id>/container.json`; directories without a
    /// readable record (a crash during create) are removed, and a record
    /// left in the middle of its removal is dead.
    pub fn open(data_root: &Path) -> Result<Self, Error> {
        let root = data_root.join("containers");
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::internal(format!("Cannot create {}: {e}", root.display())))?;
        let mut map = BTreeMap::new();
        for entry in std::fs::read_dir(&root)
            .map_err(|e| Error::internal(format!("Cannot list {}: {e}", root.display())))?
        {
            let Ok(entry) = entry else { continue };
            let path = entry.path().join("container.json");
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).ok())
            {
                Some(rec) => {
                    map.insert(rec.id.clone(), rec);
                }
                None => {
                    tracing::warn!(dir = %entry.path().display(), "removing a container directory without a valid record");
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        // A removal the daemon did not finish (it was stopped or crashed
        // in the middle): dead, as Docker has it, for `rm` to try again.
        let interrupted: Vec<String> = map
            .values_mut()
            .filter(|r| r.state == State::Removing)
            .map(|r| {
                r.state = State::Dead;
                r.id.clone()
            })
            .collect();
        let store = Self {
            root,
            inner: Mutex::new(map),
            writes: std::array::from_fn(|_| Mutex::new(())),
        };
        for id in interrupted {
            if let Ok(rec) = store.get(&id) {
                store.persist(&rec)?;
            }
        }
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ContainerRecord>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Held across a change of container `id` and its write to disk: the
    /// record on disk is always the newest.
    fn write_lock(&self, id: &str) -> MutexGuard<'_, ()> {
        let h = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        self.writes[h % WRITE_LOCKS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn all(&self) -> Vec<ContainerRecord> {
        self.lock().values().cloned().collect()
    }

    /// Finds a container by full ID, name (with or without `/`), or unique ID prefix.
    pub fn get(&self, name: &str) -> Result<ContainerRecord, Error> {
        let map = self.lock();
        find(&map, name).cloned()
    }

    /// Adds a new container, refusing a taken name with Docker's 409.
    pub fn insert(&self, rec: ContainerRecord) -> Result<(), Error> {
        let _write = self.write_lock(&rec.id);
        {
            let mut map = self.lock();
            if let Some(other) = map.values().find(|c| c.name == rec.name) {
                return Err(Error::conflict(format!(
                    "Conflict. The container name \"/{}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    rec.name, other.id
                )));
            }
            // Holds the name while the record is written.
            map.insert(rec.id.clone(), rec.clone());
        }
        if let Err(e) = self.persist(&rec) {
            self.lock().remove(&rec.id);
            return Err(e);
        }
        Ok(())
    }

    /// Applies `change` to a container and persists it.
    pub fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord) -> Result<T, Error>,
    ) -> Result<(T, ContainerRecord), Error> {
        let _write = self.write_lock(id);
        let (out, next) = {
            let map = self.lock();
            let rec = map
                .get(id)
                .ok_or_else(|| Error::not_found(format!("No such container: {id}")))?;
            let mut next = rec.clone();
            (change(&mut next)?, next)
        };
        self.persist(&next)?;
        if let Some(rec) = self.lock().get_mut(id) {
            *rec = next.clone();
        }
        Ok((out, next))
    }

    /// Removes the record and its folder. When the folder cannot go (a
    /// mount still in it) the record stays, for the caller to mark dead.
    pub fn remove(&self, id: &str) -> Result<(), Error> {
        let _write = self.write_lock(id);
        let dir = self.dir(id);
        std::fs::remove_dir_all(&dir)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| Error::internal(format!("Cannot remove {}: {e}", dir.display())))?;
        self.lock().remove(id);
        Ok(())
    }

    fn persist(&self, rec: &ContainerRecord) -> Result<(), Error> {
        let dir = self.dir(&rec.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("Cannot create {}: {e}", dir.display())))?;
        let bytes = serde_json::to_vec_pretty(rec).expect("record serialises");
        let write = || {
            servin_image::meta::write_atomic(&dir.join("container.json"), &bytes)
                .map_err(Error::from)
        };
        // Callers are often async tasks: let the runtime move its other
        // tasks off this worker while the fsyncs block it.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(write)
            }
            _ => write(),
        }
    }
}

fn find<'a>(
    map: &'a BTreeMap<String, ContainerRecord>,
    name: &str,
) -> Result<&'a ContainerRecord, Error> {
    if let Some(c) = map.get(name) {
        return Ok(c);
    }
    let bare = name.strip_prefix('/').unwrap_or(name);
    if let Some(c) = map.values().find(|c| c.name == bare) {
        return Ok(c);
    }
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut it = map.values().filter(|c| c.id.starts_with(name));
        if let Some(c) = it.next() {
            if it.next().is_some() {
                return Err(Error::invalid(format!(
                    "Multiple IDs found with provided prefix: {name}"
                )));
            }
            return Ok(c);
        }
    }
    Err(Error::not_found(format!("No such container: {name}")))
}
