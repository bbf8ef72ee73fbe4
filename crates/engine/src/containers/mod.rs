//! Containers: records, lifecycle under per-container shims, logs, views.

mod archive;
mod copyup;
mod create;
mod exec;
mod health;
mod lifecycle;
mod logs;
mod names;
mod record;
mod store;
mod top;
mod views;

pub use create::{new_id, Created};
pub use exec::{ExecRecord, ExecTable};
pub use lifecycle::{parse_signal, AttachTicket, PendingAttach};
pub use logs::{frame, LogOptions};
pub use record::{ContainerRecord, State};
pub use store::ContainerStore;
