//! What the engine remembers of a container, persisted as
//! `containers/<id>/container.json` (temp file + rename on every change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Go's zero time, which Docker shows for a time that has not happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A container's lifecycle state. Transitions are checked in one place,
/// [`State::can`], so an invalid request fails with a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum State {
    Created,
    Running {
        pid: u32,
        started_at: String,
    },
    Paused {
        pid: u32,
        started_at: String,
    },
    Restarting {
        started_at: String,
    },
    /// Also a start that failed before the process ran: Docker keeps the
    /// exit code and error, and a container that never ran (`started_at`
    /// is [`ZERO_TIME`]) still shows as created.
    Exited {
        code: i64,
        oom_killed: bool,
        started_at: String,
        finished_at: String,
        error: String,
    },
    Removing,
    Dead,
}

/// What a request wants to do with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Kill,
    Pause,
    Unpause,
    Exec,
    Remove,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running { .. } => "running",
            State::Paused { .. } => "paused",
            State::Restarting { .. } => "restarting",
            State::Exited { .. } if self.never_started() => "created",
            State::Exited { .. } => "exited",
            State::Removing => "removing",
            State::Dead => "dead",
        }
    }

    /// An `Exited` record of a container whose process never ran.
    pub fn never_started(&self) -> bool {
        matches!(self, State::Exited { started_at, .. } if started_at == ZERO_TIME)
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self,
            State::Running { .. } | State::Paused { .. } | State::Restarting { .. }
        )
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            State::Running { pid, .. } | State::Paused { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// Whether `action` is allowed now; `Err` carries Docker's message.
    pub fn can(&self, action: Action, id: &str) -> Result<(), String> {
        let short = &id[..12.min(id.len())];
        match (action, self) {
            (Action::Start, State::Created | State::Exited { .. }) => Ok(()),
            (Action::Start, State::Running { .. }) => Ok(()),
            (Action::Start, State::Paused { .. }) => {
                Err("cannot start a paused container, try unpause instead".into())
            }
            (Action::Stop, _) => Ok(()),
            (Action::Kill | Action::Pause, State::Running { .. }) => Ok(()),
            (Action::Kill | Action::Pause, _) => Err(format!("Container {short} is not running")),
            (Action::Unpause, State::Paused { .. }) => Ok(()),
            (Action::Unpause, _) => Err(format!("Container {short} is not paused")),
            (Action::Exec, State::Running { .. }) => Ok(()),
            (Action::Exec, State::Paused { .. }) => Err(format!("Container {short} is paused, unpause the container before exec")),
            (Action::Exec, _) => Err(format!("Container {short} is not running")),
            (Action::Remove, State::Running { .. } | State::Paused { .. } | State::Restarting { .. }) => Err(format!(
                "cannot remove container \"/{{name}}\": container is {}: Stop the container before attempting removal or force remove",
                self.name()
            )),
            (Action::Remove, State::Removing) => Err(format!("removal of container {short} is already in progress")),
            (Action::Remove, _) => Ok(()),
            (Action::Start, State::Removing | State::Dead | State::Restarting { .. }) => {
                Err(format!("container {short} is marked for removal and cannot be started"))
            }
        }
    }
}

/// One container as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    /// Docker's `Config`, merged with the image's defaults.
    pub config: Value,
    /// Docker's `HostConfig`, as given.
    pub host_config: Value,
    pub state: State,
    pub restart_count: u64,
    /// Set when a user stopped it (for `unless-stopped`).
    pub manually_stopped: bool,
    pub runtime: String,
    /// The healthcheck's state, when the container has one and has run.
    #[serde(default)]
    pub health: Option<super::health::Health>,
    /// The volume made at create for each destination that has an
    /// anonymous one (`-v /dir`, an image's `VOLUME`, `--mount
    /// type=volume` without a source), kept for every start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub anonymous_volumes: BTreeMap<String, String>,
}

impl ContainerRecord {
    pub fn dir(data_root: &Path, id: &str) -> PathBuf {
        data_root.join("containers").join(id)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    pub fn tty(&self) -> bool {
        self.config["Tty"].as_bool().unwrap_or(false)
    }
}
