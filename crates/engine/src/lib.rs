//! The engine: one entry point for everything the API can ask. The HTTP
//! server, the CLI bridge and the VM bridge translate to calls on
//! [`Engine`]; the engine decides.

// Docker-shaped JSON documents (`/info`) are deep `json!` literals.
#![recursion_limit = "256"]

pub mod containers;
mod events;
pub mod filters;
mod images;
mod links;
mod networks;
mod system;
mod transfer;
mod volumes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use servin_image::{ImageStore, RegistryConfig};

pub use events::{Event, EventActor};
pub use images::{ImageFilter, ListOptions};
pub use networks::{NetworkConfig, NetworkSubnet};
pub use system::BuildInfo;

/// The strings of a JSON array (`Cmd`, `Env`, `Links` …); none for
/// anything else, and non-strings skipped.
pub(crate) fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// How many past events `/events?since=` can replay.
const RECENT_EVENTS: usize = 1024;

/// Settings the engine is opened with, resolved by the daemon.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub registries: RegistryConfig,
    pub build: BuildInfo,
    /// The `servin-shim` executable started for each container.
    pub shim_binary: PathBuf,
    /// The init binary `--init` mounts at `/sbin/docker-init`.
    pub init_path: PathBuf,
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    images: Arc<ImageStore>,
    containers: Arc<containers::ContainerStore>,
    execs: containers::ExecTable,
    pending_attaches:
        std::sync::Mutex<std::collections::HashMap<String, Vec<containers::PendingAttach>>>,
    /// Each running container's last stats sample (`read`, `cpu_stats`):
    /// the next one reports it as `preread`/`precpu_stats`, as Docker does.
    last_stats: std::sync::Mutex<std::collections::HashMap<String, (Value, Value)>>,
    events: tokio::sync::broadcast::Sender<Event>,
    /// The last events, for `/events?since=` (Docker keeps a window too).
    recent: std::sync::Mutex<std::collections::VecDeque<Event>>,
    started: SystemTime,
    /// Container networking, once [`Engine::open_networks`] ran.
    net: networks::NetState,
}

impl Engine {
    /// Opens the engine's state under the data root, recovering from any
    /// interrupted operation.
    pub fn open(config: EngineConfig) -> Result<Self, servin_api::Error> {
        std::fs::create_dir_all(&config.data_root).map_err(|e| {
            servin_api::Error::internal(format!(
                "Cannot create data root {}: {e}",
                config.data_root.display()
            ))
        })?;
        let images = Arc::new(ImageStore::open(&config.data_root)?);
        let containers = Arc::new(containers::ContainerStore::open(&config.data_root)?);
        let (events, _) = tokio::sync::broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                images,
                containers,
                execs: Default::default(),
                pending_attaches: Default::default(),
                last_stats: Default::default(),
                events,
                recent: Default::default(),
                started: SystemTime::now(),
                net: Default::default(),
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn image_store(&self) -> &Arc<ImageStore> {
        &self.inner.images
    }

    /// Subscribes to the engine's events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, event: Event) {
        {
            let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.inner.events.send(event);
    }

    /// Subscribes, and returns the remembered events at or after `since_nano`
    /// (taken under the same lock, so none is missed or seen twice).
    pub fn subscribe_since(
        &self,
        since_nano: i64,
    ) -> (Vec<Event>, tokio::sync::broadcast::Receiver<Event>) {
        let recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.inner.events.subscribe();
        let past = recent
            .iter()
            .filter(|e| e.time_nano >= since_nano)
            .cloned()
            .collect();
        (past, rx)
    }

    pub(crate) fn containers(&self) -> &containers::ContainerStore {
        &self.inner.containers
    }

    /// Remembers `(read, cpu_stats)` of container `id`'s newest sample and
    /// returns the one before it; `None` forgets the container.
    pub(crate) fn swap_last_stats(
        &self,
        id: &str,
        sample: Option<(Value, Value)>,
    ) -> Option<(Value, Value)> {
        let mut last = self
            .inner
            .last_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match sample {
            Some(s) => last.insert(id.to_string(), s),
            None => last.remove(id),
        }
    }

    pub(crate) fn execs(&self) -> &containers::ExecTable {
        &self.inner.execs
    }

    pub(crate) fn containers_arc(&self) -> Arc<containers::ContainerStore> {
        self.inner.containers.clone()
    }

    /// Re-adopts containers whose shims outlived a previous daemon; call
    /// once, from within the runtime, after [`Engine::open`].
    pub fn restore(&self) {
        self.restore_containers();
    }

    pub(crate) fn add_pending_attach(&self, id: &str, p: containers::PendingAttach) {
        let mut map = self
            .inner
            .pending_attaches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string()).or_default().push(p);
    }

    pub(crate) fn take_pending_attaches(&self, id: &str) -> Vec<containers::PendingAttach> {
        let mut map = self
            .inner
            .pending_attaches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.remove(id).unwrap_or_default()
    }

    /// Containers (short IDs) whose mounts use the named volume.
    pub(crate) fn containers_using_volume(&self, name: &str) -> Vec<String> {
        self.containers()
            .all()
            .into_iter()
            .filter(|c| {
                let binds = c.host_config["Binds"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mounts = c.host_config["Mounts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                binds
                    .iter()
                    .filter_map(|b| b.as_str())
                    .any(|b| b.split(':').next() == Some(name))
                    || mounts
                        .iter()
                        .any(|m| m["Type"] == "volume" && m["Source"] == name)
                    || c.anonymous_volumes.values().any(|v| v == name)
            })
            .map(|c| c.id)
            .collect()
    }

    /// The container using an image, if any.
    pub(crate) fn image_user(&self, id: &servin_api::Digest) -> Option<String> {
        let id = id.to_string();
        self.containers()
            .all()
            .into_iter()
            .find(|c| c.image_id == id)
            .map(|c| c.id)
    }
}
