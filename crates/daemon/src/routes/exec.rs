//! `/containers/{id}/exec` and `/exec/{id}/…`.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use servin_engine::Engine;

use super::containers::hijack;
use super::Params;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

async fn create(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("malformed JSON in request body: {e}")))?;
    let exec_id = engine.create_exec(&id, &v)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

async fn start(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::invalid(format!("cannot read request body: {e}")))?;
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("malformed JSON in request body: {e}")))?
    };
    let detach = v["Detach"].as_bool().unwrap_or(false);
    let (stream, tty) = engine.start_exec(&id, detach).await?;
    if detach {
        // Nobody reads: keep draining so the process never blocks on output.
        tokio::task::spawn_blocking(move || {
            let mut s = stream;
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        });
        return Ok(StatusCode::OK.into_response());
    }
    Ok(hijack(&mut req, tty, async move { Some(stream) }))
}

async fn resize(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let (w, h) = params.size()?;
    engine.resize_exec(&id, w, h).await?;
    Ok(StatusCode::OK)
}

async fn inspect(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(engine.inspect_exec(&id).await?))
}
