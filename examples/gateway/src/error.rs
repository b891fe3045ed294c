//! Every error the API answers: `{"error": <code>, "detail": <text>}` with
//! a fitting status. `code` is tq's error code in lower case (`not_ready`,
//! `seat_unavailable`, ...), `bad_input` for a request the gateway refuses
//! itself, `unavailable` when Redis cannot be reached.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
}

impl ApiError {
    pub fn bad_input(detail: &str) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_input".into(),
            detail: detail.into(),
        }
    }

    pub fn unavailable(detail: &str) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable".into(),
            detail: detail.into(),
        }
    }

    pub fn internal(detail: &str) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal".into(),
            detail: detail.into(),
        }
    }

    /// A Redis error: a TQ error reply by its code, a lost connection as
    /// `unavailable`.
    pub fn from_redis(e: redis::RedisError) -> ApiError {
        match e.code() {
            Some(code) => ApiError::from_code(code, e.detail().unwrap_or_default()),
            None => ApiError::unavailable(&e.to_string()),
        }
    }

    /// A tq error reply `-<CODE> <detail>`, or one the gateway answers for
    /// tq (the same code and status).
    pub fn from_code(code: &str, detail: &str) -> ApiError {
        ApiError {
            status: status_of(code),
            code: code.to_ascii_lowercase(),
            detail: detail.into(),
        }
    }
}

/// The HTTP status of a tq error code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "DUPLICATE" | "SEAT_UNAVAILABLE" | "LIMIT" => StatusCode::CONFLICT,
        "NOT_READY" | "NO_PASS" | "NOT_OWNER" => StatusCode::FORBIDDEN,
        "NOT_QUEUED" | "NOT_HELD" => StatusCode::NOT_FOUND,
        "NOT_OPEN" => StatusCode::TOO_EARLY,
        "SOLD_OUT" => StatusCode::GONE,
        "ERR" => StatusCode::BAD_REQUEST,
        "TRYAGAIN" | "LOADING" | "READONLY" | "OOM" | "MASTERDOWN" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "detail": self.detail }));
        (self.status, body).into_response()
    }
}
