//! JSON error bodies: `{"error", "message", "field"?}` plus any extra fields (`hint`,
//! `receivedUrl`) the contract shows.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// An error answer: a status and a JSON body, plus a `Retry-After` header when set.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body: `error`, `message` and any extra fields.
    pub body: Map<String, Value>,
    /// Seconds for the `Retry-After` header; `None`: no header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, the short `error` title and a `message`.
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> ApiError {
        let mut body = Map::new();
        body.insert("error".into(), json!(error));
        body.insert("message".into(), json!(message.into()));
        ApiError {
            status,
            body,
            retry_after: None,
        }
    }

    /// Adds (or replaces) the body field `key`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.body.insert(key.into(), value.into());
        self
    }

    /// Names the request `field` at fault.
    pub fn field(self, field: &str) -> ApiError {
        self.with("field", field)
    }

    /// Sets the `Retry-After` header and the `retryAfter` body field, in seconds.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self.with("retryAfter", secs)
    }

    /// A job removed by retention.
    pub fn gone_job(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::GONE,
            "Job expired.",
            format!("Job '{id}' finished longer ago than this server keeps jobs; its data and files were removed."),
        )
        .field("jobId")
    }

    /// 404 for a job id that is unknown (or not the caller's).
    pub fn not_found_job(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Job not found.",
            format!("No job with id '{id}'."),
        )
        .field("jobId")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(Value::Object(self.body))).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
