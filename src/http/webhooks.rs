//! A job's webhook delivery log and manual redelivery.
//!
//! - `GET /api/jobs/:jobId/webhooks` → `{"jobId", "attempts": [{"webhookId", "event", "attempt",
//!   "at", "statusCode", "error", "latencyMs", "result"}, …]}`, oldest first.
//! - `POST /api/jobs/:jobId/webhooks/redeliver` → `202 {"jobId", "webhookId", "event",
//!   "attempt", "message"}`: the job's last event is sent again now with the same `webhook-id` and
//!   body; its result appears in the log. `409` when the job has no webhook event yet.
//!
//! Both answer 404 for a job the caller's API key did not create.
//!
//! - `GET /api/webhooks/secret` → `{"keyId", "secret"}`: the `whsec_…` secret that signs the
//!   webhooks of the calling key's jobs. Only with API keys: an open server would hand its secret
//!   to anyone (403; the operator finds it in the config or `<data_dir>/webhook-secret`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_actors::manager::JobManagerMsg;
use vidbuilder_actors::webhook::{RedeliveryRefused, WebhookMsg};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delivery_log))
        .routes(routes!(redeliver))
        .routes(routes!(signing_secret))
}

/// The calling key's webhook signing secret (only when the server has API keys).
#[utoipa::path(get, path = "/api/webhooks/secret", tag = "webhooks",
    responses(
        (status = 200, description = "{\"keyId\", \"secret\"}.", body = serde_json::Value),
        (status = 403, description = "The server has no API keys: its secret is not handed out.", body = super::openapi::ErrorBody),
    ))]
async fn signing_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let Some(key_id) = caller.key_id else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden.",
            "This server runs without API keys, so it does not hand out its webhook secret over \
             HTTP; the operator finds it in webhook.secret or <data_dir>/webhook-secret.",
        ));
    };
    let secret = state
        .signing
        .for_owner(Some(&key_id))
        .map(|s| s.expose().to_string());
    Ok(Json(json!({"success": true, "keyId": key_id, "secret": secret})).into_response())
}

/// The job id if the job exists, is not expired and is the caller's.
fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable.",
        format!("The webhook deliverer is not available: {e}"),
    )
    .retry_after(5)
}

/// A job's webhook delivery log, oldest first.
#[utoipa::path(get, path = "/api/jobs/{job_id}/webhooks", tag = "webhooks",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "{\"jobId\", \"attempts\": [...]}.", body = serde_json::Value),
        (status = 404, description = "No such job (or not the caller's).", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
    ))]
async fn delivery_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = state.job_view(&caller, &job_id).await?.job_id;
    let job = id.clone();
    let attempts = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::ToWebhooks(WebhookMsg::Log { job_id: job, reply }),
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(unavailable)?;
    Ok(Json(json!({ "jobId": id.to_string(), "attempts": attempts })).into_response())
}

/// Send the job's last webhook event again now (same webhook-id and body).
#[utoipa::path(post, path = "/api/jobs/{job_id}/webhooks/redeliver", tag = "webhooks",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 202, description = "Sent; the result appears in the delivery log.", body = serde_json::Value),
        (status = 404, description = "No such job (or not the caller's).", body = super::openapi::ErrorBody),
        (status = 409, description = "The job has no event yet, or its receiver answered 410 Gone.", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
        (status = 429, description = "A delivery of the job is in flight, or within webhook.redelivery_cooldown_secs of the last redelivery.", body = super::openapi::ErrorBody),
        (status = 500, description = "The redelivery could not be queued.", body = super::openapi::ErrorBody),
    ))]
async fn redeliver(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = state.job_view(&caller, &job_id).await?.job_id;
    let job = id.clone();
    let answer = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::ToWebhooks(WebhookMsg::Redeliver { job_id: job, reply }),
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(unavailable)?
    .map_err(|e| match e {
        RedeliveryRefused::Busy { retry_after_secs }
        | RedeliveryRefused::Cooling { retry_after_secs } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Redelivery throttled.",
            format!("Not sent: {e}."),
        )
        .field("jobId")
        .retry_after(retry_after_secs),
        RedeliveryRefused::Gone => ApiError::new(
            StatusCode::CONFLICT,
            "Receiver gone.",
            format!("Not sent: {e}."),
        )
        .field("jobId"),
        RedeliveryRefused::Store(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Redelivery failed.",
            format!("Could not read the job's last webhook event: {e}"),
        ),
    })?;
    let Some(r) = answer else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Nothing to redeliver.",
            "This job has no webhook event yet (no webhookUrl, or it has not started).",
        )
        .field("jobId"));
    };
    let message = if r.was_pending {
        "The pending delivery is being attempted now; see the delivery log for its result."
    } else {
        "The last event is being sent again; see the delivery log for its result."
    };
    let body = json!({
        "jobId": id.to_string(),
        "webhookId": r.webhook_id,
        "event": r.event,
        "attempt": r.attempt,
        "message": message,
        "logUrl": format!("/api/jobs/{id}/webhooks"),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
