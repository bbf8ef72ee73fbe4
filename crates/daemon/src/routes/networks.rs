//! `/networks…`: each handler is one engine call.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use servin_engine::Engine;

use super::Params;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("malformed JSON in request body: {e}")))
}

async fn list(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(
        engine
            .list_networks(params.get("filters").unwrap_or(""))
            .await?,
    ))
}

async fn create(State(engine): State<Engine>, body: Bytes) -> ApiResult<Response> {
    let v = json_body(&body)?;
    let out = engine.create_network(&v).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn prune(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Value>> {
    Ok(Json(
        engine
            .prune_networks(params.get("filters").unwrap_or(""))
            .await?,
    ))
}

async fn inspect(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(engine.inspect_network(&id).await?))
}

async fn remove(State(engine): State<Engine>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn container_of(v: &Value) -> Result<String, ApiError> {
    v["Container"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid("a container name or ID is required"))
}

async fn connect(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let v = json_body(&body)?;
    let container = container_of(&v)?;
    engine
        .connect_network(&id, &container, &v["EndpointConfig"])
        .await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let v = json_body(&body)?;
    let container = container_of(&v)?;
    engine.disconnect_network(&id, &container).await?;
    Ok(StatusCode::OK)
}
