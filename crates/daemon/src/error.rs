//! Errors as the Docker API reports them: `{"message": …}` with a status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use servin_api::{Error, ErrorKind};

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<servin_image::StoreError> for ApiError {
    fn from(e: servin_image::StoreError) -> Self {
        Self(e.into())
    }
}

impl ApiError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self(Error::invalid(msg))
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind);
        if status.is_server_error() {
            tracing::error!(message = %self.0.message, "request failed");
        }
        (
            status,
            Json(serde_json::json!({ "message": self.0.message })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
