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
    let time = |k: &str| -> ApiResult<Option<f64>> {
        match params.get(k).filter(|s| !s.is_empty()) {
            Some(v) => v
                .parse::<f64>()
                .map(Some)
                .or_else(|_| {
                    chrono::DateTime::parse_from_rfc3339(v).map(|t| {
                        Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
                    })
                })
                .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}"))),
            None => Ok(None),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let filters = params.get("filters").unwrap_or("").to_string();
    let wanted: serde_json::Value = if filters.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&filters)
            .map_err(|e| ApiError::invalid(format!("invalid filter: {e}")))?
    };
    let (past, rx) = match since {
        Some(s) => engine.subscribe_since((s * 1e9) as i64),
        None => (Vec::new(), engine.subscribe()),
    };
    let until_nano = until.map(|u| (u * 1e9) as i64);
    let line = |ev: &servin_engine::Event| {
        let mut b = serde_json::to_vec(&ev.to_json()).expect("json");
        b.push(b'\n');
        axum::body::Bytes::from(b)
    };
    let replay: Vec<axum::body::Bytes> = past
        .iter()
        .filter(|e| until_nano.is_none_or(|u| e.time_nano <= u))
        .filter(|e| matches_filters(&e.to_json(), &wanted))
        .map(line)
        .collect();
    let w = wanted.clone();
    let live = futures::stream::unfold(rx, move |mut rx| {
        let wanted = w.clone();
        async move {
            loop {
                let next = match until {
                    Some(u) => {
                        let now =
                            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as f64 / 1e9;
                        if now >= u {
                            return None;
                        }
                        match tokio::time::timeout(
                            std::time::Duration::from_secs_f64(u - now),
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
                            return Some((axum::body::Bytes::from(b), rx));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        }
    });
    use futures::StreamExt;
    let stream = futures::stream::iter(replay)
        .chain(live)
        .map(Ok::<_, std::io::Error>);
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
        let attrs = &ev["Actor"]["Attributes"];
        let id = ev["Actor"]["ID"].as_str().unwrap_or("");
        let action = ev["Action"].as_str().unwrap_or("");
        let kind = ev["Type"].as_str().unwrap_or("");
        let matched = match key.as_str() {
            "type" => values.iter().any(|v| v == kind),
            // `health_status` matches `health_status: healthy`, as in Docker.
            "event" => values
                .iter()
                .any(|v| action == v || action.split(':').next() == Some(v.as_str())),
            "container" => {
                kind == "container"
                    && values
                        .iter()
                        .any(|v| id.starts_with(v.as_str()) || attrs["name"] == *v)
            }
            "image" => values
                .iter()
                .any(|v| id == v || attrs["image"] == *v || attrs["name"] == *v),
            "volume" => kind == "volume" && values.iter().any(|v| id == v),
            "label" => values.iter().any(|v| match v.split_once('=') {
                Some((k, val)) => attrs[k] == val,
                None => !attrs[v.as_str()].is_null(),
            }),
            _ => return false,
        };
        matched
    })
}
