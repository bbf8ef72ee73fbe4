//! Docker's JSON-lines progress streams. The HTTP status is held back until
//! the operation either reports progress (then 200 and a stream, with any
//! later error as an `errorDetail` line) or fails first (then a plain error
//! response with its proper status).

use std::collections::VecDeque;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use servin_api::Error;
use servin_image::{Progress, ProgressSink};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// How progress messages become JSON lines.
pub type Render = fn(Progress) -> Value;

/// Pull and push progress, as Docker prints it.
pub fn render_progress(p: Progress) -> Value {
    match p {
        Progress::Status(s) => json!({ "status": s }),
        Progress::Item {
            id,
            status,
            detail: None,
        } => json!({ "status": status, "progressDetail": {}, "id": id }),
        Progress::Item {
            id,
            status,
            detail: Some((current, total)),
        } => {
            let mut v = json!({
                "status": status,
                "progressDetail": { "current": current },
                "id": id,
            });
            if let Some(t) = total {
                v["progressDetail"]["total"] = json!(t);
                v["progress"] = json!(bar(current, t));
            }
            v
        }
    }
}

/// Load output: `{"stream": "Loaded image: …\n"}`.
pub fn render_stream(p: Progress) -> Value {
    match p {
        Progress::Status(s) => json!({ "stream": format!("{s}\n") }),
        other => render_progress(other),
    }
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    let digits: String = s.chars().take(5).collect();
    format!("{}{}", digits.trim_end_matches('.'), units[i])
}

fn bar(current: u64, total: u64) -> String {
    const WIDTH: usize = 50;
    let filled = (current.min(total) * WIDTH as u64)
        .checked_div(total)
        .unwrap_or(0) as usize;
    let mut s = String::with_capacity(WIDTH + 2);
    s.push('[');
    if filled > 0 {
        s.push_str(&"=".repeat(filled - 1));
        s.push('>');
    }
    s.push_str(&" ".repeat(WIDTH - filled));
    s.push(']');
    format!("{s} {:>8}/{}", human(current), human(total))
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).expect("json");
    b.push(b'\n');
    Bytes::from(b)
}

fn error_line(e: &Error) -> Value {
    json!({ "errorDetail": { "message": e.message }, "error": e.message })
}

/// Runs `op` with a progress sink and answers with its progress stream.
/// `finish` turns the operation's result into closing lines.
pub async fn respond<T, F>(
    render: Render,
    op: impl FnOnce(ProgressSink) -> F,
    finish: fn(T) -> Vec<Value>,
) -> Response
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let (done_tx, mut done_rx) = oneshot::channel::<Result<T, Error>>();
    let fut = op(ProgressSink::new(tx));
    tokio::spawn(async move {
        let _ = done_tx.send(fut.await);
    });

    let mut pending: VecDeque<Value> = VecDeque::new();
    let mut finished = false;
    tokio::select! {
        biased;
        Some(p) = rx.recv() => pending.push_back(render(p)),
        r = &mut done_rx => {
            finished = true;
            while let Ok(p) = rx.try_recv() {
                pending.push_back(render(p));
            }
            match r {
                Ok(Err(e)) if pending.is_empty() => return ApiError(e).into_response(),
                Ok(Err(e)) => pending.push_back(error_line(&e)),
                Ok(Ok(v)) => pending.extend(finish(v)),
                Err(_) => pending.push_back(error_line(&Error::internal("The operation ended unexpectedly"))),
            }
        }
    }

    struct State<T> {
        rx: mpsc::UnboundedReceiver<Progress>,
        done: Option<oneshot::Receiver<Result<T, Error>>>,
        pending: VecDeque<Value>,
        render: Render,
        finish: fn(T) -> Vec<Value>,
    }
    let state = State {
        rx,
        done: if finished { None } else { Some(done_rx) },
        pending,
        render,
        finish,
    };
    let body = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(v) = st.pending.pop_front() {
                return Some((Ok::<_, std::io::Error>(line(&v)), st));
            }
            let done = st.done.as_mut()?;
            tokio::select! {
                biased;
                Some(p) = st.rx.recv() => st.pending.push_back((st.render)(p)),
                r = done => {
                    st.done = None;
                    while let Ok(p) = st.rx.try_recv() {
                        st.pending.push_back((st.render)(p));
                    }
                    match r {
                        Ok(Ok(v)) => st.pending.extend((st.finish)(v)),
                        Ok(Err(e)) => st.pending.push_back(error_line(&e)),
                        Err(_) => st.pending.push_back(error_line(&Error::internal("The operation ended unexpectedly"))),
                    }
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human(2_145_000), "2.145MB");
        assert_eq!(human(512), "512B");
        assert_eq!(human(1000), "1kB");
    }

    #[test]
    fn bar_has_fixed_width() {
        for (c, t) in [(0, 10), (5, 10), (10, 10), (3, 0)] {
            let b = bar(c, t);
            assert_eq!(b.find(']'), Some(51), "{b}");
        }
        assert!(bar(10, 10).starts_with("[=================================================>]"));
    }
}
