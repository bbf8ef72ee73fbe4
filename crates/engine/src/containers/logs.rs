//! `GET /containers/{id}/logs`: the json-file log the shim writes, replayed
//! and optionally followed, framed as Docker frames it.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use bytes::Bytes;
use servin_api::Error;
use tokio::sync::mpsc;

use crate::Engine;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Unix seconds; lines before it are skipped.
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// Only the last N lines.
    pub tail: Option<usize>,
}

/// One line of Docker's json-file format.
#[derive(serde::Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// Docker's multiplexed frame: stream id, three zero bytes, big-endian length.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn render(line: &Line, opts: &LogOptions, tty: bool) -> Option<Vec<u8>> {
    let stream = match line.stream.as_str() {
        "stdout" if opts.stdout => 1,
        "stderr" if opts.stderr => 2,
        _ => return None,
    };
    let t = chrono::DateTime::parse_from_rfc3339(&line.time).ok()?;
    let secs = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
    if opts.since.is_some_and(|s| secs < s) || opts.until.is_some_and(|u| secs > u) {
        return None;
    }
    let mut payload = Vec::new();
    if opts.timestamps {
        payload.extend_from_slice(line.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(line.log.as_bytes());
    Some(if tty {
        payload
    } else {
        frame(stream, &payload)
    })
}

impl Engine {
    /// Streams the log; the receiver ends when the log (or, following, the container) does.
    pub fn container_logs(
        &self,
        name: &str,
        opts: LogOptions,
    ) -> Result<(mpsc::Receiver<Bytes>, bool), Error> {
        let rec = self.containers().get(name)?;
        let tty = rec.tty();
        let path = self.log_path(&rec.id);
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let engine = self.clone();
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(file) = std::fs::File::open(&path) else {
                return;
            };
            let mut reader = BufReader::new(file);
            let mut lines: Vec<Vec<u8>> = Vec::new();
            let mut buf = String::new();
            // Replay: collect what is there (only the tail when asked).
            while reader.read_line(&mut buf).map(|n| n > 0).unwrap_or(false) {
                if buf.ends_with('\n') {
                    if let Some(out) = serde_json::from_str::<Line>(&buf)
                        .ok()
                        .and_then(|l| render(&l, &opts, tty))
                    {
                        lines.push(out);
                        if let Some(n) = opts.tail {
                            if lines.len() > n {
                                lines.remove(0);
                            }
                        }
                    }
                    buf.clear();
                } else {
                    break;
                }
            }
            for l in lines {
                if tx.blocking_send(Bytes::from(l)).is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let mut pos = reader.stream_position().unwrap_or(0) - buf.len() as u64;
            loop {
                let running = engine
                    .containers()
                    .get(&id)
                    .map(|r| r.state.is_running())
                    .unwrap_or(false);
                let mut file = reader.into_inner();
                let _ = file.seek(SeekFrom::Start(pos));
                reader = BufReader::new(file);
                let mut line = String::new();
                let mut progressed = false;
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if !line.ends_with('\n') {
                        break;
                    }
                    pos += line.len() as u64;
                    progressed = true;
                    if let Some(out) = serde_json::from_str::<Line>(&line)
                        .ok()
                        .and_then(|l| render(&l, &opts, tty))
                    {
                        if tx.blocking_send(Bytes::from(out)).is_err() {
                            return;
                        }
                    }
                    line.clear();
                }
                if !running && !progressed {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Ok((rx, tty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_like_docker() {
        assert_eq!(
            frame(1, b"hi\n"),
            vec![1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
    }
}
