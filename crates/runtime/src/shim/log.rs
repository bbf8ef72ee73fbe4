//! The container's log in Docker's json-file format: one
//! `{"log":"…\n","stream":"stdout","time":"…Z"}` object per line of output.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::RuntimeError;

/// Docker splits lines longer than its 16 KiB buffer into partial entries.
const MAX_LINE: usize = 16 * 1024;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// Appends a container's output to its json-file log.
pub struct JsonLog {
    file: File,
    /// An unterminated last line per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    pub fn open(path: &Path) -> Result<JsonLog, RuntimeError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| RuntimeError::io(format!("create {}", dir.display()), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                RuntimeError::io(format!("open the container log {}", path.display()), e)
            })?;
        Ok(JsonLog {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs a chunk of `stream` (1 = stdout, 2 = stderr) read at `now`.
    pub fn write(&mut self, stream: u8, data: &[u8], now: DateTime<Utc>) {
        let idx = usize::from(stream == 2);
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            self.emit(stream, &buf[start..end], now);
            start = end;
        }
        while buf.len() - start >= MAX_LINE {
            self.emit(stream, &buf[start..start + MAX_LINE], now);
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.partial[idx] = buf;
    }

    /// Writes out unterminated last lines (at exit).
    pub fn flush_partial(&mut self, now: DateTime<Utc>) {
        for (idx, stream) in [(0usize, 1u8), (1, 2)] {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                self.emit(stream, &buf, now);
            }
        }
    }

    fn emit(&mut self, stream: u8, line: &[u8], now: DateTime<Utc>) {
        let entry = Entry {
            log: &String::from_utf8_lossy(line),
            stream: if stream == 2 { "stderr" } else { "stdout" },
            time: rfc3339_nano(now),
        };
        let Ok(mut json) = serde_json::to_vec(&entry) else {
            return;
        };
        json.push(b'\n');
        if let Err(e) = self.file.write_all(&json) {
            tracing::warn!(error = %e, "cannot write the container log");
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction dropped.
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_lines_and_flushes_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut log = JsonLog::open(&p).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        log.write(1, b"hel", t);
        log.write(2, b"err\n", t);
        log.write(1, b"lo\nwor", t);
        log.flush_partial(t);
        let l = lines(&p);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0]["log"], "err\n");
        assert_eq!(l[0]["stream"], "stderr");
        assert_eq!(l[1]["log"], "hello\n");
        assert_eq!(l[2]["log"], "wor");
        assert_eq!(l[2]["time"], "2026-01-02T03:04:05Z");
    }

    #[test]
    fn long_lines_become_partial_entries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut log = JsonLog::open(&p).unwrap();
        log.write(1, &vec![b'a'; MAX_LINE + 10], Utc::now());
        log.flush_partial(Utc::now());
        let l = lines(&p);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["log"].as_str().unwrap().len(), MAX_LINE);
    }

    #[test]
    fn formats_like_go() {
        let t = Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
    }
}
