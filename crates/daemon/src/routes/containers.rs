//! `/containers/…`: each handler is one engine call.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use servin_api::ErrorKind;
use servin_engine::containers::LogOptions;
use servin_engine::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Params;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}", axum::routing::delete(remove))
}

fn parse_body(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "config cannot be empty in order to create a container",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("malformed JSON in request body: {e}")))
}

async fn create(State(engine): State<Engine>, params: Params, body: Bytes) -> ApiResult<Response> {
    let v = parse_body(&body)?;
    let name = params.get("name").map(str::to_string);
    let e = engine.clone();
    let created = tokio::task::spawn_blocking(move || e.create_container(name.as_deref(), &v))
        .await
        .map_err(|e| ApiError(servin_api::Error::internal(e.to_string())))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": created.id, "Warnings": created.warnings})),
    )
        .into_response())
}

async fn list(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Vec<Value>>> {
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let all = params.flag("all")? || limit.is_some();
    Ok(Json(engine.list_containers(
        all,
        params.get("filters").unwrap_or(""),
        limit,
    )?))
}

async fn prune(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Value>> {
    Ok(Json(
        engine
            .prune_containers(params.get("filters").unwrap_or(""))
            .await?,
    ))
}

async fn inspect(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(engine.inspect_container(&id)?))
}

async fn start(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    match engine.start_container(&id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) if e.kind == ErrorKind::Conflict && e.message == "container already started" => {
            Ok(StatusCode::NOT_MODIFIED.into_response())
        }
        Err(e) => Err(ApiError(e)),
    }
}

fn timeout(params: &Params) -> ApiResult<Option<i64>> {
    match params
        .get("t")
        .or_else(|| params.get("timeout"))
        .filter(|s| !s.is_empty())
    {
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("invalid value for t: {t}"))),
        None => Ok(None),
    }
}

async fn stop(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let stopped = engine
        .stop_container(&id, timeout(&params)?, params.get("signal"))
        .await?;
    Ok(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }
    .into_response())
}

async fn restart(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine
        .stop_container(&id, timeout(&params)?, params.get("signal"))
        .await?;
    engine.start_container(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine.kill_container(&id, params.get("signal")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers the headers at once (the docker CLI waits for them before it
/// starts the container) and the body when the condition is met.
async fn wait(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    engine.inspect_container(&id)?;
    let condition = params.get("condition").unwrap_or("").to_string();
    if !matches!(
        condition.as_str(),
        "" | "not-running" | "next-exit" | "removed"
    ) {
        return Err(ApiError::invalid(format!(
            "invalid condition: \"{condition}\""
        )));
    }
    let stream = futures::stream::once(async move {
        let body = match engine.wait_container(&id, &condition).await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let mut b = serde_json::to_vec(&body).expect("json");
        b.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(b))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

async fn remove(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine
        .remove_container(&id, params.flag("force")?, params.flag("v")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let (w, h) = params.size()?;
    engine.resize_container(&id, w, h).await?;
    Ok(StatusCode::OK)
}

async fn logs(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let time = |k: &str| -> ApiResult<Option<f64>> {
        match params.get(k).filter(|s| !s.is_empty() && *s != "0") {
            Some(v) => v
                .parse::<f64>()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}"))),
            None => Ok(None),
        }
    };
    let opts = LogOptions {
        stdout: params.flag("stdout")?,
        stderr: params.flag("stderr")?,
        follow: params.flag("follow")?,
        timestamps: params.flag("timestamps")?,
        since: time("since")?,
        until: time("until")?,
        tail: params
            .get("tail")
            .filter(|t| *t != "all" && !t.is_empty())
            .and_then(|t| t.parse().ok()),
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::invalid("you must choose at least one stream"));
    }
    let (rx, tty) = engine.container_logs(&id, opts)?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

/// `POST /containers/{id}/attach`: upgrades the connection and joins it to
/// the container's stdio through the shim. A client half-close closes the
/// container's stdin.
async fn attach(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
    mut req: Request,
) -> ApiResult<Response> {
    let stdin = params.flag("stdin")?;
    let stdout = params.flag("stdout")?;
    let stderr = params.flag("stderr")?;
    let (ticket, tty) = engine.attach_container(&id, stdin, stdout, stderr).await?;
    Ok(hijack(
        &mut req,
        tty,
        async move { ticket.stream().await.ok() },
    ))
}

/// Answers an attach-style request (101 with `Upgrade: tcp` when asked)
/// and, once the connection is upgraded, joins it to the stream `shim`
/// resolves to.
pub fn hijack(
    req: &mut Request,
    tty: bool,
    shim: impl std::future::Future<Output = Option<std::os::unix::net::UnixStream>> + Send + 'static,
) -> Response {
    let upgrade = hyper::upgrade::on(&mut *req);
    let wants_upgrade = req.headers().get(header::UPGRADE).is_some();
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    tokio::spawn(async move {
        let Some(shim) = shim.await else { return };
        let Ok(upgraded) = upgrade.await else { return };
        let _ = shim.set_nonblocking(true);
        let Ok(shim) = tokio::net::UnixStream::from_std(shim) else {
            return;
        };
        join(hyper_util::rt::TokioIo::new(upgraded), shim).await;
    });
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, ct)
        .body(Body::empty())
        .expect("valid response");
    if wants_upgrade {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        resp.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    }
    resp
}

/// Copies both ways until the container's output ends; a client EOF is
/// passed on as a half-close.
async fn join<C>(client: C, shim: tokio::net::UnixStream)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    let to_shim = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sw.shutdown().await;
        std::future::pending::<()>().await
    };
    let from_shim = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::select! {
        _ = to_shim => {},
        _ = from_shim => {},
    }
}

async fn pause(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.pause_container(&id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.pause_container(&id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine.rename_container(&id, params.get("name").unwrap_or(""))?;
    Ok(StatusCode::NO_CONTENT)
}

/// One sample with `stream=false`, else a sample a second until the client leaves.
async fn stats(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let first = engine.container_stats(&id).await?;
    let stream = params
        .get("stream")
        .is_none_or(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let line = |v: &Value| {
        let mut b = serde_json::to_vec(v).expect("json");
        b.push(b'\n');
        Bytes::from(b)
    };
    if !stream {
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(line(&first)))
            .expect("valid response"));
    }
    let body = futures::stream::unfold(
        (engine, id, Some(first)),
        move |(engine, id, first)| async move {
            let v = match first {
                Some(v) => v,
                None => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    engine.container_stats(&id).await.ok()?
                }
            };
            Some((Ok::<_, std::io::Error>(line(&v)), (engine, id, None)))
        },
    );
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("valid response"))
}
