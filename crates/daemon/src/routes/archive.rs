//! `docker cp` (`/containers/{id}/archive`), `docker export` and `docker top`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use futures::TryStreamExt;
use serde_json::Value;
use servin_engine::Engine;
use tokio::sync::mpsc;

use super::Params;
use crate::error::{ApiError, ApiResult};

/// The header carrying Docker's `ContainerPathStat`, base64 JSON.
const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

pub fn routes() -> Router<Engine> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(archive).head(stat).put(extract),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/top", get(top))
}

fn path_param(params: &Params) -> ApiResult<String> {
    match params.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        // Docker's message, missing space included.
        _ => Err(ApiError::invalid("bad parameter: pathcannot be empty")),
    }
}

fn stat_header(stat: &Value) -> HeaderValue {
    let json = serde_json::to_vec(stat).expect("json");
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
        .expect("base64 is a valid header value")
}

fn tar_body(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

/// `HEAD`: the stat header alone.
async fn stat(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let stat = engine
        .container_path_stat(&id, &path_param(&params)?)
        .await?;
    Ok(Response::builder()
        .header(STAT_HEADER, stat_header(&stat))
        .body(Body::empty())
        .expect("valid response"))
}

async fn archive(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (stat, rx) = engine.container_archive(&id, &path_param(&params)?).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(STAT_HEADER, stat_header(&stat))
        .body(tar_body(rx))
        .expect("valid response"))
}

async fn extract(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
    body: Body,
) -> ApiResult<StatusCode> {
    let path = path_param(&params)?;
    let no_overwrite = params.flag("noOverwriteDirNonDir")?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    engine
        .extract_to_container(&id, &path, no_overwrite, Box::new(reader))
        .await?;
    Ok(StatusCode::OK)
}

async fn export(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<Response> {
    let rx = engine.export_container(&id).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(tar_body(rx))
        .expect("valid response"))
}

async fn top(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        engine
            .container_top(&id, params.get("ps_args").unwrap_or(""))
            .await?,
    ))
}
