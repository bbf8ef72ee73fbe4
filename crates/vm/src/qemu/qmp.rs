//! A small QMP client (QEMU's JSON control protocol on a unix socket): the
//! greeting, `qmp_capabilities`, then one command at a time. Written by hand:
//! we need three commands, and the `qapi` crate brings a generated schema
//! for all of them.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(socket: &Path, timeout: Duration) -> std::io::Result<Qmp> {
        let s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(invalid(format!("unexpected QMP greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        serde_json::from_str(&line).map_err(|e| invalid(e.to_string()))
    }

    /// Runs a command and returns its `return` value (events in between
    /// are skipped).
    pub fn execute(&mut self, command: &str) -> std::io::Result<Value> {
        let mut req = serde_json::to_vec(&json!({ "execute": command }))?;
        req.push(b'\n');
        self.writer.write_all(&req)?;
        loop {
            let msg = self.read()?;
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                return Err(invalid(format!("QMP {command}: {err}")));
            }
        }
    }

    /// `query-status`'s `status` (`running`, `guest-panicked`, …).
    pub fn status(&mut self) -> std::io::Result<String> {
        let r = self.execute("query-status")?;
        Ok(r.get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
