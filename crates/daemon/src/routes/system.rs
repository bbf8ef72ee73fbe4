//! `/_ping`, `/version`, `/info`, `/events`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use servin_engine::Engine;

use super::Params;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/auth", axum::routing::post(auth))
}

/// `POST /auth` with `{"username", "password", "serveraddress"}`.
async fn auth(
    State(engine): State<Engine>,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("malformed JSON in request body: {e}")))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let creds = if !s("identitytoken").is_empty() {
        servin_image::Credentials::Token(s("identitytoken"))
    } else {
        servin_image::Credentials::Basic {
            username: s("username"),
            password: s("password"),
        }
    };
    Ok(Json(engine.login(&s("serveraddress"), creds).await?))
}

async fn ping() -> Response {
    let mut resp = (StatusCode::OK, "OK").into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    resp
}

async fn version(State(engine): State<Engine>) -> Json<serde_json::Value> {
    Json(engine.version())
}

async fn info(State(engine): State<Engine>) -> Json<serde_json::Value> {
    Json(engine.info())
}

/// Streams engine events as JSON lines until the client goes away (or `until` passes).
async fn events(State(engine): State<Engine>, params: Params) -> ApiResult<Response> {
    let until = match params.get("until").filter(|s| !s.is_empty()) {
        Some(u) => Some(
            u.split('.')
                .next()
                .unwrap_or("")
                .parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("invalid value for until: {u}")))?,
        ),
        None => None,
    };
    let filters = params.get("filters").unwrap_or("").to_string();
    let wanted: serde_json::Value = if filters.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&filters)
            .map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?
    };
    let rx = engine.subscribe();
    let stream = futures::stream::unfold(rx, move |mut rx| {
        let wanted = wanted.clone();
        async move {
            loop {
                let next = match until {
                    Some(u) => {
                        let now = chrono::Utc::now().timestamp();
                        if now >= u {
                            return None;
                        }
                        match tokio::time::timeout(
                            std::time::Duration::from_secs((u - now) as u64),
                            rx.recv(),
                        )
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => return None,
                        }
                    }
                    None => rx.recv().await,
                };
                match next {
                    Ok(ev) => {
                        let v = ev.to_json();
                        if matches_filters(&v, &wanted) {
                            let mut b = serde_json::to_vec(&v).expect("json");
                            b.push(b'\n');
                            return Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(b)), rx));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

fn matches_filters(ev: &serde_json::Value, filters: &serde_json::Value) -> bool {
    let Some(obj) = filters.as_object() else {
        return true;
    };
    obj.iter().all(|(key, values)| {
        let values: Vec<String> = match values {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            _ => return true,
        };
        if values.is_empty() {
            return true;
        }
        let field = match key.as_str() {
            "type" => ev["Type"].as_str().map(str::to_string),
            "event" => ev["Action"].as_str().map(str::to_string),
            "image" | "container" => ev["Actor"]["ID"].as_str().map(str::to_string),
            _ => None,
        };
        match field {
            Some(f) => values
                .iter()
                .any(|v| *v == f || (key == "image" && ev["Actor"]["Attributes"]["name"] == *v)),
            None => false,
        }
    })
}
