//! `/volumes…`.

use std::collections::BTreeMap;

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
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

async fn list(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Value>> {
    Ok(Json(
        engine.list_volumes(params.get("filters").unwrap_or(""))?,
    ))
}

fn map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn create(State(engine): State<Engine>, body: Bytes) -> ApiResult<Response> {
    let v: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("malformed JSON in request body: {e}")))?
    };
    let out = engine.create_volume(
        v["Name"].as_str(),
        map(&v["Labels"]),
        v["Driver"].as_str(),
        map(&v["DriverOpts"]),
    )?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn prune(State(engine): State<Engine>, params: Params) -> ApiResult<Json<Value>> {
    Ok(Json(
        engine.prune_volumes(params.get("filters").unwrap_or(""))?,
    ))
}

async fn inspect(State(engine): State<Engine>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(engine.inspect_volume(&name)?))
}

async fn remove(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    engine.remove_volume(&name, params.flag("force")?)?;
    Ok(StatusCode::NO_CONTENT)
}
