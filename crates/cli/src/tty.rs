//! The user's terminal: raw mode while keys go to a container's TTY, its
//! size, and keeping the container's TTY the same size (docker's
//! `MonitorTtySize`).

use std::io::IsTerminal as _;

use anyhow::Result;
use hyper::Method;
use nix::sys::termios::{self, SetArg, Termios};

use crate::client::{empty_body, Client};

/// Stdin in raw mode; dropping it restores the saved settings.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, or `None` when stdin is not a terminal.
    pub fn stdin() -> Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// `[height, width]` of the terminal on stdout, `[0, 0]` when it is none.
pub fn size() -> [u16; 2] {
    match console::Term::stdout().size_checked() {
        Some((rows, cols)) if std::io::stdout().is_terminal() => [rows, cols],
        _ => [0, 0],
    }
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Resizes `base` (`/containers/ID` or `/exec/ID`) to the terminal now and
/// on every SIGWINCH, in the background.
pub fn monitor_size(client: &Client, base: String) {
    let client = client.clone();
    tokio::spawn(async move {
        if resize(&client, &base).await.is_err() {
            // The process may not be ready for a resize yet: retry a while.
            let mut ok = false;
            for retry in 1..=10u64 {
                tokio::time::sleep(std::time::Duration::from_millis(retry * 10)).await;
                if resize(&client, &base).await.is_ok() {
                    ok = true;
                    break;
                }
            }
            if !ok {
                eprintln!("failed to resize tty, using default size");
            }
        }
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            let _ = resize(&client, &base).await;
        }
    });
}

/// Resizes to one more row and column than the terminal has, which docker's
/// `attach` does first so the process redraws when the real size follows.
pub async fn nudge_size(client: &Client, base: &str) {
    let [h, w] = size();
    let _ = resize_to(client, base, h + 1, w + 1).await;
}

async fn resize(client: &Client, base: &str) -> Result<()> {
    let [h, w] = size();
    resize_to(client, base, h, w).await
}

async fn resize_to(client: &Client, base: &str, h: u16, w: u16) -> Result<()> {
    if h == 0 && w == 0 {
        return Ok(());
    }
    client
        .request(
            Method::POST,
            &format!("{base}/resize"),
            &[("h", h.to_string()), ("w", w.to_string())],
            &[],
            empty_body(),
        )
        .await?;
    Ok(())
}
