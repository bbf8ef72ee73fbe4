//! The persisted state: `DATA_ROOT/network/state.json`, replaced atomically
//! (temp file, fsync, rename) on every change.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::State;

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(data_root: &Path) -> Result<Store> {
        let dir = data_root.join("network");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(Store { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The saved state, or an empty one on first start.
    pub fn load(&self) -> Result<State> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(Error::Io {
                what: "read",
                path,
                source,
            }),
        }
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let path = self.path();
        let tmp = self.dir.join(".state.json.tmp");
        let io = |what, source| Error::Io {
            what,
            path: tmp.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io {
            what: "replace",
            path,
            source,
        })
    }
}
