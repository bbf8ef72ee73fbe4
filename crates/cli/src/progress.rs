//! Docker's JSON progress streams (pull, push, load, import): plain lines
//! when stdout is not a terminal, exactly as `jsonmessage` prints them, and
//! one progress bar per layer when it is.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use chrono::{TimeZone, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;

use crate::client::JsonStream;
use crate::format::human_size;

/// One message of a progress stream (`jsonmessage.JSONMessage`).
#[derive(Debug, Default, Deserialize)]
pub struct JsonMessage {
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub status: String,
    #[serde(rename = "progressDetail")]
    pub progress: Option<ProgressDetail>,
    /// The pre-rendered bar; shown only by daemons that send no detail.
    #[serde(rename = "progress", default)]
    pub progress_message: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub time: i64,
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
    #[serde(rename = "errorDetail")]
    pub error: Option<ErrorDetail>,
    #[serde(rename = "error", default)]
    pub error_message: String,
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProgressDetail {
    #[serde(default)]
    pub current: i64,
    #[serde(default)]
    pub total: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
}

impl JsonMessage {
    /// The stream's error, if this message carries one.
    pub fn error(&self) -> Option<String> {
        match &self.error {
            Some(e) => Some(e.message.clone()),
            None if !self.error_message.is_empty() => Some(self.error_message.clone()),
            None => None,
        }
    }

    fn has_progress(&self) -> bool {
        self.progress
            .as_ref()
            .is_some_and(|p| p.current > 0 || p.total > 0)
    }

    /// The line `jsonmessage.Display` writes for a non-terminal, or `None`
    /// for byte counts, which only terminals show.
    pub fn plain_line(&self) -> Option<String> {
        if self.has_progress() {
            return None;
        }
        let mut line = String::new();
        if self.time_nano != 0 {
            line.push_str(&rfc3339_nano(Utc.timestamp_nanos(self.time_nano)));
            line.push(' ');
        } else if self.time != 0 {
            if let Some(t) = Utc.timestamp_opt(self.time, 0).single() {
                line.push_str(&rfc3339_nano(t));
                line.push(' ');
            }
        }
        if !self.id.is_empty() {
            line.push_str(&self.id);
            line.push_str(": ");
        }
        if !self.from.is_empty() {
            line.push_str(&format!("(from {}) ", self.from));
        }
        if !self.progress_message.is_empty() {
            // Docker ends these without a newline, too.
            line.push_str(&format!("{} {}", self.status, self.progress_message));
        } else if !self.stream.is_empty() {
            line.push_str(&self.stream);
        } else {
            line.push_str(&self.status);
            line.push('\n');
        }
        Some(line)
    }
}

/// Docker's `RFC3339NanoFixed`.
fn rfc3339_nano(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Where a progress stream is shown.
pub enum Display {
    /// Discard everything (`-q`), still failing on errors.
    Quiet,
    /// Plain lines.
    Plain(Target),
    /// Live bars (a terminal).
    Bars(Target),
}

/// The stream progress goes to: stdout for `pull`, stderr for the pull
/// that `run` and `create` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
}

impl Target {
    fn writer(self) -> Box<dyn Write> {
        match self {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::Stderr => Box::new(std::io::stderr()),
        }
    }

    fn term(self) -> console::Term {
        match self {
            Target::Stdout => console::Term::stdout(),
            Target::Stderr => console::Term::stderr(),
        }
    }
}

impl Display {
    /// Bars on a terminal, plain lines otherwise.
    pub fn for_stdout(quiet: bool) -> Display {
        Display::for_target(quiet, Target::Stdout)
    }

    /// The same on stderr.
    pub fn for_stderr(quiet: bool) -> Display {
        Display::for_target(quiet, Target::Stderr)
    }

    fn for_target(quiet: bool, target: Target) -> Display {
        use std::io::IsTerminal as _;
        let terminal = match target {
            Target::Stdout => std::io::stdout().is_terminal(),
            Target::Stderr => std::io::stderr().is_terminal(),
        };
        if quiet {
            Display::Quiet
        } else if terminal {
            Display::Bars(target)
        } else {
            Display::Plain(target)
        }
    }
}

/// Shows a whole stream; an error message in it becomes the command's error.
pub async fn show(mut stream: JsonStream, display: Display) -> Result<()> {
    let target = match display {
        Display::Plain(t) | Display::Bars(t) => t,
        Display::Quiet => Target::Stdout,
    };
    let mut bars = Bars::new(target);
    let mut out = target.writer();
    let result = async {
        while let Some(msg) = stream.next::<JsonMessage>().await? {
            if let Some(err) = msg.error() {
                anyhow::bail!(err);
            }
            if msg.aux.is_some() {
                continue;
            }
            match display {
                Display::Quiet => {}
                Display::Plain(_) => {
                    if let Some(line) = msg.plain_line() {
                        out.write_all(line.as_bytes())?;
                        out.flush()?;
                    }
                }
                Display::Bars(_) => bars.show(&msg, &mut out)?,
            }
        }
        Ok(())
    }
    .await;
    bars.finish();
    result
}

/// Live per-layer bars. Lines without a layer id end the current group of
/// bars (they stay on screen) and print below them, as docker's do.
struct Bars {
    target: Target,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    /// Docker draws the `[===>  ]` part only on terminals wider than 110.
    wide: Option<bool>,
}

impl Bars {
    fn new(target: Target) -> Self {
        Bars {
            target,
            multi: None,
            bars: HashMap::new(),
            wide: None,
        }
    }

    fn show(&mut self, msg: &JsonMessage, out: &mut dyn Write) -> Result<()> {
        let is_layer =
            !msg.id.is_empty() && (msg.progress.is_some() || !msg.progress_message.is_empty());
        if !is_layer {
            self.finish();
            if let Some(line) = msg.plain_line() {
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            return Ok(());
        }
        let wide = *self.wide.get_or_insert_with(|| {
            self.target
                .term()
                .size_checked()
                .is_some_and(|(_, cols)| cols > 110)
        });
        let mut progress = progress_text(msg.progress.as_ref(), wide);
        if progress.is_empty() {
            progress.clone_from(&msg.progress_message);
        }
        let line = format!("{}: {} {progress}", msg.id, msg.status);
        let multi = self.multi.get_or_insert_with(|| {
            MultiProgress::with_draw_target(match self.target {
                Target::Stdout => ProgressDrawTarget::stdout(),
                Target::Stderr => ProgressDrawTarget::stderr(),
            })
        });
        let bar = self.bars.entry(msg.id.clone()).or_insert_with(|| {
            let style = ProgressStyle::with_template("{msg}").expect("static template");
            multi.add(ProgressBar::hidden().with_style(style))
        });
        bar.set_message(line);
        Ok(())
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish();
        }
        // The last bar's line is left without a newline.
        if self.multi.take().is_some() && !self.bars.is_empty() {
            let _ = writeln!(self.target.writer());
        }
        self.bars.clear();
    }
}

/// Docker's `JSONProgress.String()`: `[=====>     ]  1.2MB/4.3MB`, the bar
/// only on wide terminals.
fn progress_text(progress: Option<&ProgressDetail>, wide: bool) -> String {
    let Some(p) = progress.filter(|p| p.current > 0 || p.total > 0) else {
        return String::new();
    };
    let current = human_size(p.current as f64);
    if p.total <= 0 {
        return format!("{current:>8}");
    }
    let filled = ((p.current as f64 / p.total as f64 * 100.0) as usize / 2).min(50);
    let bar = if wide {
        format!("[{}>{}] ", "=".repeat(filled), " ".repeat(50 - filled))
    } else {
        String::new()
    };
    if p.current > p.total {
        format!("{bar}{current:>8}")
    } else {
        format!("{bar}{current:>8}/{}", human_size(p.total as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: &str) -> JsonMessage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plain_lines_like_docker() {
        assert_eq!(
            msg(r#"{"status":"Pulling from busybox","id":"latest"}"#)
                .plain_line()
                .unwrap(),
            "latest: Pulling from busybox\n"
        );
        assert_eq!(
            msg(r#"{"status":"Pulling fs layer","progressDetail":{},"id":"a8811e67946b"}"#)
                .plain_line()
                .unwrap(),
            "a8811e67946b: Pulling fs layer\n"
        );
        let downloading = r#"{"status":"Downloading","progressDetail":{"current":36445,"total":1064565},"progress":"[=>   ]","id":"a8811e67946b"}"#;
        assert!(msg(downloading).plain_line().is_none());
        assert_eq!(
            msg(r#"{"stream":"Loaded image: other/thing:v1\n"}"#)
                .plain_line()
                .unwrap(),
            "Loaded image: other/thing:v1\n"
        );
        assert_eq!(
            msg(r#"{"status":"Digest: sha256:6b4b"}"#)
                .plain_line()
                .unwrap(),
            "Digest: sha256:6b4b\n"
        );
    }

    #[test]
    fn terminal_progress_like_docker() {
        let p = ProgressDetail {
            current: 36_445,
            total: 1_064_565,
        };
        assert_eq!(
            progress_text(Some(&p), true),
            format!("[=>{}]  36.45kB/1.065MB", " ".repeat(49))
        );
        assert_eq!(progress_text(Some(&p), false), " 36.45kB/1.065MB");
        let done = ProgressDetail {
            current: 1_064_565,
            total: 1_064_565,
        };
        assert!(progress_text(Some(&done), true).starts_with(&format!("[{}>]", "=".repeat(50))));
        assert_eq!(progress_text(Some(&ProgressDetail::default()), true), "");
        assert_eq!(progress_text(None, true), "");
    }

    #[test]
    fn errors_in_stream() {
        let m = msg(r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#);
        assert_eq!(m.error().as_deref(), Some("manifest unknown"));
        assert!(msg(r#"{"status":"ok"}"#).error().is_none());
    }
}
