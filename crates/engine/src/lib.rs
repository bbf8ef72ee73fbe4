//! The engine: one entry point for everything the API can ask. The HTTP
//! server, the CLI bridge and the VM bridge translate to calls on
//! [`Engine`]; the engine decides.

// Docker-shaped JSON documents (`/info`) are deep `json!` literals.
#![recursion_limit = "256"]

mod events;
mod images;
mod system;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use servin_image::{ImageStore, RegistryConfig};

pub use events::{Event, EventActor};
pub use images::{ImageFilter, ListOptions};
pub use system::BuildInfo;

/// Settings the engine is opened with, resolved by the daemon.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub registries: RegistryConfig,
    pub build: BuildInfo,
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    images: Arc<ImageStore>,
    events: tokio::sync::broadcast::Sender<Event>,
    started: SystemTime,
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
        let (events, _) = tokio::sync::broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                images,
                events,
                started: SystemTime::now(),
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
        let _ = self.inner.events.send(event);
    }

    /// The container using an image, if any (none yet: containers come with the runtime).
    pub(crate) fn image_user(&self, _id: &servin_api::Digest) -> Option<String> {
        None
    }
}
