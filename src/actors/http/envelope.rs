//! Upstream's JSON envelope: `{"data": …}` on success, `{"error": {"code", "message"}}` on failure
//! with upstream's string codes (`invalid_request`, `not_found`, `conflict`, …), and 204 for
//! commands that return nothing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::core::ControlError;

/// Upstream's error code for an HTTP status (`apis/v1/errors.go`).
pub fn error_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "invalid_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "internal_error",
    }
}

pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": error_code(status), "message": message.into()}});
    (status, Json(body)).into_response()
}

pub fn data(value: impl serde::Serialize) -> Response {
    Json(json!({ "data": value })).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A refused control command as an HTTP error: bad input 400, unknown names 404, a state that
/// forbids it 409, a supervisor that does not answer 503.
pub fn control_error(error: &ControlError) -> Response {
    let status = match error {
        ControlError::Config(_) => StatusCode::BAD_REQUEST,
        ControlError::UnknownProbe { .. } | ControlError::UnknownPart(_) => StatusCode::NOT_FOUND,
        ControlError::Cold { .. } | ControlError::NotRunning(_) => StatusCode::CONFLICT,
        ControlError::Timeout | ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::Reload { .. } | ControlError::Start { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error_response(status, error.to_string())
}
