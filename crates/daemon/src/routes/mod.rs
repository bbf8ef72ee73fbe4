//! Routes: each handler translates an HTTP request into one engine call.

mod archive;
mod containers;
mod exec;
mod images;
mod networks;
mod stream;
mod system;
mod volumes;

use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use servin_engine::Engine;

use crate::error::ApiError;

pub fn router(engine: Engine) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(archive::routes())
        .merge(exec::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .fallback(not_found)
        .with_state(engine)
}

async fn not_found(uri: Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "message": format!("page not found: {}", uri.path()) })),
    )
}

/// Query parameters, keeping repeated keys (`names=a&names=b`).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_uri(uri: &Uri) -> Self {
        Self(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `w` and `h` of a resize request.
    pub fn size(&self) -> Result<(u16, u16), ApiError> {
        let dim = |k: &str| -> Result<u16, ApiError> {
            self.get(k)
                .unwrap_or("0")
                .parse()
                .map_err(|_| ApiError::invalid(format!("invalid {k}")))
        };
        Ok((dim("w")?, dim("h")?))
    }

    /// Docker's boolean parsing: absent, "", "0", "false" (any case) and "no" are false.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "" | "0" | "false" | "no" => Ok(false),
                "1" | "true" | "yes" => Ok(true),
                _ => Err(ApiError::invalid(format!(
                    "invalid value for {key}: {v:?} is not a boolean"
                ))),
            },
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Params::from_uri(&parts.uri))
    }
}
