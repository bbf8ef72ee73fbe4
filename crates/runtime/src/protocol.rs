//! The shim's control protocol on `STATE_DIR/shim.sock`.
//!
//! A client connects, writes one request as a JSON line and reads one
//! response as a JSON line: `{"ok": VALUE}` or `{"error": {"kind": …,
//! "detail": …}}`. After a successful `attach` or `exec` the connection
//! carries raw bytes: the process's output (8-byte multiplexed frames without
//! a tty, raw with one) from the shim, its stdin from the client; the client's
//! `shutdown(Write)` closes that stdin. Every other request is one round
//! trip; `wait` answers when the container has exited.

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::spec::{ExecId, ProcessSpec};

/// Longest request line the shim accepts.
pub const MAX_REQUEST: usize = 1 << 20;

/// Stream ids of Docker's multiplexed attach framing.
pub const STDOUT_STREAM: u8 = 1;
pub const STDERR_STREAM: u8 = 2;

/// One request to the shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    State,
    Start,
    Kill {
        signal: i32,
    },
    Wait,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Resize {
        width: u16,
        height: u16,
    },
    Pause,
    Resume,
    Exec {
        process: ProcessSpec,
    },
    ExecStatus {
        id: ExecId,
    },
    ExecResize {
        id: ExecId,
        width: u16,
        height: u16,
    },
    Stats,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Response {
    Ok(serde_json::Value),
    Error(WireError),
}

/// What `start` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: u32,
}

/// What `exec` answers before the raw stream begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStarted {
    pub id: ExecId,
    pub pid: u32,
}

/// Docker's 8-byte frame header for `len` bytes of `stream`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_lines() {
        let r = Request::Attach {
            stdin: true,
            stdout: true,
            stderr: false,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"attach","stdin":true,"stdout":true,"stderr":false}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"wait"}"#).unwrap(),
            Request::Wait
        );
        let ok = serde_json::to_string(&Response::Ok(serde_json::json!({"pid": 3}))).unwrap();
        assert_eq!(ok, r#"{"ok":{"pid":3}}"#);
        let err = serde_json::to_string(&Response::Error(WireError::Conflict("x".into()))).unwrap();
        assert_eq!(err, r#"{"error":{"kind":"conflict","detail":"x"}}"#);
    }

    #[test]
    fn frames() {
        assert_eq!(frame_header(2, 258), [2, 0, 0, 0, 0, 0, 1, 2]);
    }
}
