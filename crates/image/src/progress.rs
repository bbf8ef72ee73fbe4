//! Progress of pulls, pushes and loads, in Docker's vocabulary. The API
//! layer turns these into Docker's JSON messages.

use tokio::sync::mpsc::UnboundedSender;

/// One progress message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A line without an id (`Digest: …`, `Status: …`).
    Status(String),
    /// A line about one item (a layer, usually, by short digest).
    Item {
        id: String,
        status: String,
        /// Bytes done and total, for progress bars.
        detail: Option<(u64, Option<u64>)>,
    },
}

/// Where progress goes; cheap to clone, never blocks, and ignores a
/// client that went away (the operation completes regardless, as Docker's).
#[derive(Debug, Clone, Default)]
pub struct ProgressSink {
    tx: Option<UnboundedSender<Progress>>,
}

impl ProgressSink {
    pub fn new(tx: UnboundedSender<Progress>) -> Self {
        Self { tx: Some(tx) }
    }

    /// A sink that drops everything.
    pub fn discard() -> Self {
        Self { tx: None }
    }

    pub fn status(&self, s: impl Into<String>) {
        self.send(Progress::Status(s.into()));
    }

    pub fn item(&self, id: &str, status: &str) {
        self.send(Progress::Item {
            id: id.to_string(),
            status: status.to_string(),
            detail: None,
        });
    }

    pub fn bytes(&self, id: &str, status: &str, current: u64, total: Option<u64>) {
        self.send(Progress::Item {
            id: id.to_string(),
            status: status.to_string(),
            detail: Some((current, total)),
        });
    }

    fn send(&self, p: Progress) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(p);
        }
    }
}
