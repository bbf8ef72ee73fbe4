//! `/images/…`. Image names may contain slashes, so everything below
//! `/images/` that is not a fixed route is dispatched by its last segment,
//! as Docker's `{name:.*}` routes do.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures::TryStreamExt;
use serde_json::{json, Value};
use servin_engine::{Engine, ImageFilter, ListOptions};
use servin_image::pull::PullOutcome;
use servin_image::Credentials;

use super::stream::{render_progress, render_stream, respond};
use super::Params;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/prune", post(prune))
        .route("/images/get", get(save_many))
        .route("/images/search", get(search))
        .route(
            "/images/{*rest}",
            get(dispatch).post(dispatch).delete(dispatch),
        )
}

async fn list(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Vec<Value>>> {
    let mut filters = ImageFilter::parse_all(params.get("filters").unwrap_or(""))?;
    if let Some(f) = params.get("filter").filter(|f| !f.is_empty()) {
        filters.push(ImageFilter::Reference(f.to_string()));
    }
    let opts = ListOptions {
        all: params.flag("all")?,
        digests: params.flag("digests")?,
        filters,
    };
    let e = engine.clone();
    let images = tokio::task::spawn_blocking(move || e.list_images(&opts))
        .await
        .map_err(|e| ApiError(servin_api::Error::internal(e.to_string())))??;
    Ok(Json(images))
}

/// Credentials from `X-Registry-Auth` (base64url JSON, as the docker CLI sends).
fn credentials(headers: &HeaderMap) -> ApiResult<Credentials> {
    let Some(raw) = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()) else {
        return Ok(Credentials::Anonymous);
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Credentials::Anonymous);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .map_err(|_| ApiError::invalid("X-Registry-Auth is not valid base64"))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::invalid("X-Registry-Auth is not valid JSON"))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    Ok(if !s("identitytoken").is_empty() {
        Credentials::Token(s("identitytoken"))
    } else if !s("registrytoken").is_empty() {
        Credentials::Token(s("registrytoken"))
    } else if !s("username").is_empty() {
        Credentials::Basic {
            username: s("username"),
            password: s("password"),
        }
    } else {
        Credentials::Anonymous
    })
}

/// `POST /images/create`: pull (`fromImage`) or import (`fromSrc`).
async fn create(
    State(engine): State<Engine>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if let Some(src) = params.get("fromSrc") {
        if src != "-" {
            return Err(ApiError(servin_api::Error::new(
                servin_api::ErrorKind::Unsupported,
                "importing from a URL is not supported: pass the archive in the request body (fromSrc=-)",
            )));
        }
        return import(engine, params, body).await;
    }
    let Some(image) = params
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    else {
        return Err(ApiError::invalid("fromImage or fromSrc is required"));
    };
    let tag = params.get("tag").map(str::to_string);
    let platform = params.get("platform").map(str::to_string);
    let creds = credentials(&headers)?;
    Ok(respond(
        render_progress,
        move |sink| async move {
            engine
                .pull_image(&image, tag.as_deref(), platform.as_deref(), creds, &sink)
                .await
        },
        |_: PullOutcome| Vec::new(),
    )
    .await)
}

fn body_reader(body: Body) -> tokio_util::io::SyncIoBridge<impl tokio::io::AsyncRead + Unpin> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

async fn import(engine: Engine, params: Params, body: Body) -> ApiResult<Response> {
    let repo = params.get("repo").unwrap_or("").to_string();
    let tag = params.get("tag").unwrap_or("").to_string();
    let changes = params.all("changes");
    let message = params
        .get("message")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let platform = params
        .get("platform")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let reader = body_reader(body);
    Ok(respond(
        render_progress,
        move |_sink| async move {
            tokio::task::spawn_blocking(move || {
                engine.import_image(
                    reader,
                    &repo,
                    &tag,
                    &changes,
                    message.as_deref(),
                    platform.as_deref(),
                )
            })
            .await
            .map_err(|e| servin_api::Error::internal(e.to_string()))?
        },
        |id: servin_api::Digest| vec![json!({ "status": id.to_string() })],
    )
    .await)
}

async fn load(State(engine): State<Engine>, body: Body) -> ApiResult<Response> {
    let reader = body_reader(body);
    Ok(respond(
        render_stream,
        move |sink| async move {
            tokio::task::spawn_blocking(move || engine.load_images(reader, &sink))
                .await
                .map_err(|e| servin_api::Error::internal(e.to_string()))?
        },
        |_: ()| Vec::new(),
    )
    .await)
}

async fn prune(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Value>> {
    let filters = params.get("filters").unwrap_or("").to_string();
    let e = engine.clone();
    let v = tokio::task::spawn_blocking(move || e.prune_images(&filters))
        .await
        .map_err(|e| ApiError(servin_api::Error::internal(e.to_string())))??;
    Ok(Json(v))
}

async fn search() -> ApiResult<Json<Value>> {
    Err(ApiError(servin_api::Error::new(
        servin_api::ErrorKind::Unsupported,
        "image search is not supported: this engine only talks to registries by image name",
    )))
}

async fn save_many(State(engine): State<Engine>, params: Params) -> ApiResult<Response> {
    save(engine, params.all("names")).await
}

/// Streams a tar of the images; names are checked before the first byte.
async fn save(engine: Engine, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::invalid("no image names given"));
    }
    for n in &names {
        engine.image_id(n)?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        if let Err(e) = engine.save_images(&names, &mut w) {
            tracing::error!(error = %e, "save failed mid-stream");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    let stream = tokio_stream_from(rx);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// A blocking writer whose bytes become response chunks.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn dispatch(
    State(engine): State<Engine>,
    method: Method,
    Path(rest): Path<String>,
    params: Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (name, action) = match rest.rsplit_once('/') {
        Some((n, a)) if matches!(a, "json" | "history" | "push" | "tag" | "get") => {
            (n.to_string(), a)
        }
        _ => (rest.clone(), ""),
    };
    match (&method, action) {
        (&Method::GET, "json") => Ok(Json(engine.inspect_image(&name)?).into_response()),
        (&Method::GET, "history") => Ok(Json(engine.image_history(&name)?).into_response()),
        (&Method::GET, "get") => save(engine, vec![name]).await,
        (&Method::POST, "tag") => {
            let repo = params.get("repo").unwrap_or("");
            if repo.is_empty() {
                return Err(ApiError::invalid("repository name is required (repo)"));
            }
            engine.tag_image(&name, repo, params.get("tag"))?;
            Ok(StatusCode::CREATED.into_response())
        }
        (&Method::POST, "push") => {
            let creds = credentials(&headers)?;
            let tag = params
                .get("tag")
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            Ok(
                respond(
                    render_progress,
                    move |sink| async move {
                        engine.push_image(&name, tag.as_deref(), creds, &sink).await
                    },
                    |aux: Vec<Value>| aux,
                )
                .await,
            )
        }
        (&Method::DELETE, "") => {
            let force = params.flag("force")?;
            let e = engine.clone();
            let items = tokio::task::spawn_blocking(move || e.remove_image(&name, force))
                .await
                .map_err(|e| ApiError(servin_api::Error::internal(e.to_string())))??;
            Ok(Json(items).into_response())
        }
        _ => Err(ApiError(servin_api::Error::not_found(format!(
            "page not found: /images/{rest}"
        )))),
    }
}
