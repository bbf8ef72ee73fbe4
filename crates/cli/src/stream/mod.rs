//! Docker's `hijackedIOStreamer`: once attach or exec start has switched the
//! connection to a raw stream, copy the container's output to stdout and
//! stderr (demultiplexed unless it has a TTY) and, with `-i`, the user's
//! stdin the other way, half-closing the socket at end of input.

pub mod demux;
pub mod escape;

use std::io::{Read as _, Write as _};

use anyhow::Result;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use crate::client::Hijacked;
use crate::tty::RawMode;
use demux::{next_frame, Frame, Stream};
use escape::Escape;

/// Which streams are attached, and how.
#[derive(Clone, Debug, Default)]
pub struct Streams {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// `--detach-keys`, else ctrl-p ctrl-q (watched for with a TTY only).
    pub detach_keys: Option<String>,
}

/// How streaming ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The daemon closed the output (or input ended with none attached).
    Closed,
    /// The user typed the detach keys.
    Detached,
}

enum InputEnd {
    Eof,
    Detached,
}

/// Runs both directions until the output ends or the user detaches.
pub async fn stream(conn: Hijacked, streams: &Streams) -> Result<Ended> {
    let Hijacked { reader, writer, .. } = conn;
    // Raw mode only while we forward keys to a TTY, as docker's setupInput.
    let mut raw = if streams.stdin && streams.tty {
        RawMode::stdin()?
    } else {
        None
    };
    let escape = if streams.stdin && streams.tty {
        let keys = match streams.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => escape::parse_keys(k).unwrap_or_else(|e| {
                eprintln!("WARNING: invalid detach escape keys, using default: {e}");
                escape::DEFAULT_KEYS.to_vec()
            }),
            None => escape::DEFAULT_KEYS.to_vec(),
        };
        Some(Escape::new(keys))
    } else {
        None
    };
    let has_output = streams.stdout || streams.stderr;
    let output = copy_output(reader, streams.tty, streams.stdout, streams.stderr);
    let input = pump_input(writer, streams.stdin, escape);
    tokio::pin!(output, input);
    let mut input_done = false;
    loop {
        tokio::select! {
            r = &mut output, if has_output => {
                drop(raw.take());
                r?;
                return Ok(Ended::Closed);
            }
            r = &mut input, if !input_done => {
                drop(raw.take());
                match r {
                    InputEnd::Detached => return Ok(Ended::Detached),
                    InputEnd::Eof if has_output => input_done = true,
                    InputEnd::Eof => return Ok(Ended::Closed),
                }
            }
        }
    }
}

async fn copy_output(
    mut reader: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    tty: bool,
    stdout: bool,
    stderr: bool,
) -> Result<()> {
    let mut buf = BytesMut::with_capacity(32 * 1024);
    loop {
        buf.reserve(32 * 1024);
        let n = reader.read_buf(&mut buf).await?;
        if tty {
            if n == 0 {
                return Ok(());
            }
            write_to(Stream::Stdout, &buf)?;
            buf.clear();
            continue;
        }
        while let Some(frame) = next_frame(&mut buf).map_err(anyhow::Error::msg)? {
            match frame {
                Frame::Data(Stream::Stdout, data) if stdout => write_to(Stream::Stdout, &data)?,
                Frame::Data(Stream::Stderr, data) if stderr => write_to(Stream::Stderr, &data)?,
                Frame::Data(..) => {}
                Frame::SystemError(msg) => anyhow::bail!(msg),
            }
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// Writes and flushes straight away so output interleaves as it arrives.
pub fn write_to(stream: Stream, data: &[u8]) -> std::io::Result<()> {
    match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()
        }
        Stream::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(data)?;
            err.flush()
        }
    }
}

async fn pump_input(
    writer: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>>,
    stdin: bool,
    mut escape: Option<Escape>,
) -> InputEnd {
    let Some(mut writer) = writer else {
        return InputEnd::Eof;
    };
    if stdin {
        let mut chunks = stdin_chunks();
        while let Some(chunk) = chunks.recv().await {
            let (data, detach) = match escape.as_mut() {
                Some(e) => {
                    let f = e.filter(&chunk);
                    (f.forward, f.detach)
                }
                None => (chunk, false),
            };
            if !data.is_empty() && writer.write_all(&data).await.is_err() {
                break;
            }
            if detach {
                let _ = writer.flush().await;
                return InputEnd::Detached;
            }
        }
    }
    // End of input: tell the daemon, keep reading what it still sends.
    let _ = writer.shutdown().await;
    InputEnd::Eof
}

/// Reads stdin on its own thread (a blocked read must not hold up exit).
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Copies a log stream (`GET /containers/{id}/logs`) to stdout and stderr:
/// raw for a TTY container, demultiplexed otherwise.
pub async fn copy_logs(
    reader: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    tty: bool,
) -> Result<()> {
    copy_output(reader, tty, true, true).await
}
