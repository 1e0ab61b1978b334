//! The contract's job endpoints: async submission, status, and the blocking endpoint.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_actors::manager::{
    Admitted, CancelError, JobManagerMsg, SubmitError, SubmitRequest,
};
use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::job::{JobSnapshot, JobStatus};
use vidbuilder_domain::spec::{ImageSource, VideoSpec};
use vidbuilder_domain::store::Idempotency;
use vidbuilder_domain::validate_spec;
use vidbuilder_net::SsrfGuard;

use super::auth::Caller;
use super::error::ApiError;
use super::openapi::{ErrorBody, VideoSpecBody};
use super::present::JobStatusBody;
use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generate_async))
        .routes(routes!(generate_blocking))
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(cancel_job))
        .routes(routes!(job_status))
}

/// The `202` of a submission.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Accepted {
    /// Always true.
    pub success: bool,
    /// The job's id (for a replayed `Idempotency-Key`, the original job's).
    pub job_id: String,
    /// Its status now (`queued` for a new job).
    pub status: JobStatus,
    /// A human line.
    pub message: String,
    /// Whether webhooks go out for this job.
    pub webhook_configured: bool,
    /// `/api/job-status/:jobId`.
    pub status_url: String,
    /// `/api/job-events/:jobId`, the live progress stream.
    pub events_url: String,
    /// The contract's rough estimate.
    pub estimated_time: String,
    /// 1-based position in the queue, while queued.
    pub queue_position: Option<usize>,
}

/// `GET /api/jobs`'s body.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobList {
    /// The caller's most recent jobs, newest first.
    pub jobs: Vec<JobStatusBody>,
}

/// The `Idempotency-Key` header: at most this many characters.
pub(super) const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The request's `Idempotency-Key` (1–255 visible ASCII characters) with a digest of its body:
/// the body as parsed JSON, written back compactly with its object keys in order, so spacing and
/// key order do not make two equal specs differ.
pub(super) fn idempotency(
    headers: &HeaderMap,
    body: &Value,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| {
            (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid Idempotency-Key.",
                format!("The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters (a UUID is a good choice)."),
            )
            .field("Idempotency-Key")
        })?;
    let canonical = serde_json::to_vec(body).expect("a parsed JSON value serialises");
    let digest = super::auth::sha256(&canonical);
    Ok(Some(Idempotency {
        key: key.to_string(),
        body_hash: digest.iter().map(|b| format!("{b:02x}")).collect(),
    }))
}

/// Reads the body as a JSON object, with JSON errors for every way that can fail.
pub(super) fn parse_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    max_depth: usize,
) -> Result<Value, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "Request body too large.",
                "The request body is larger than this server accepts.",
            )
            .field("body")
        } else if rejection
            .body_text()
            .contains(super::serve::BODY_TIMEOUT_MARKER)
        {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "Request body too slow.",
                "The request body did not arrive within http.body_timeout_secs.",
            )
            .field("body")
        } else {
            ApiError::new(
                status,
                "Could not read the request body.",
                rejection.body_text(),
            )
            .field("body")
        }
    })?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported content type.",
                format!("Send the spec as JSON with 'Content-Type: application/json' (got '{essence}')."),
            )
            .field("body"));
        }
    }
    if super::limits::nesting_exceeds(&body, max_depth) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Request body nested too deeply.",
            format!("Arrays and objects may nest at most {max_depth} levels deep."),
        )
        .field("body"));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Malformed JSON.",
            format!("The request body is not valid JSON: {e}"),
        )
        .field("body")
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid request body.",
            "The request body must be a JSON object.",
        )
        .field("body"));
    }
    Ok(value)
}

/// `Some(url)` when the body has a usable webhook URL, `None` when it has none; the contract's
/// 400 when it has a bad one.
/// A URL the SSRF guard refuses (IP literal or `localhost`) is a 400 too, saying why.
pub(super) fn webhook_url(body: &Value, state: &AppState) -> Result<Option<String>, ApiError> {
    let guard: &SsrfGuard = &state.ssrf;
    let raw = match body.get("webhookUrl") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => return Err(invalid_webhook(other.clone())),
    };
    let ok = url::Url::parse(&raw).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| !h.is_empty())
            && raw.len() <= state.validation.limits.max_url_chars
    });
    match ok {
        Some(u) => match guard.check_url(&u) {
            Ok(()) => Ok(Some(u.to_string())),
            Err(why) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid webhook URL format.",
                format!(
                    "This server does not send webhooks to internal addresses: {}.",
                    why.public()
                ),
            )
            .with("receivedUrl", Value::String(raw))
            .field("webhookUrl")),
        },
        None => Err(invalid_webhook(Value::String(raw))),
    }
}

/// Image and video URLs in the spec: refused at submission when the SSRF guard can tell from the
/// URL alone (IP literals in refused ranges, `localhost`); names resolved later are checked again
/// at fetch.
pub(super) fn check_image_urls(spec: &VideoSpec, guard: &SsrfGuard) -> Result<(), ApiError> {
    let mut sources = spec.images();
    sources.extend(spec.videos().into_iter().map(|(f, _, c)| (f, &c.src)));
    for (field, src) in sources {
        let ImageSource::Url(raw) = src else { continue };
        let bad = |why: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid video spec.",
                format!("{field}: {why}"),
            )
            .field(&field)
        };
        let url = url::Url::parse(raw)
            .ok()
            .filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            })
            .ok_or_else(|| bad("must be a valid http(s) URL".into()))?;
        guard.check_url(&url).map_err(|why| {
            bad(format!(
                "this server does not fetch media from internal addresses: {}",
                why.public()
            ))
        })?;
    }
    Ok(())
}

/// The spec's asset videos, probed: a missing or unreadable one (or a trim past its end) is a
/// `400` naming the field.
pub(super) async fn check_videos(spec: &VideoSpec, state: &AppState) -> Result<(), ApiError> {
    state.media.check(spec).await.map_err(|(field, why)| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid video spec.",
            format!("{field}: {why}"),
        )
        .field(&field)
    })
}

fn invalid_webhook(received: Value) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "Invalid webhook URL format.",
        "Please provide a valid HTTP/HTTPS URL.",
    )
    .with("receivedUrl", received)
    .field("webhookUrl")
}

async fn submit(
    state: &AppState,
    body: &Value,
    webhook_url: Option<String>,
    caller: &Caller,
    idempotency: Option<Idempotency>,
) -> Result<Admitted, ApiError> {
    let spec = validate_spec(body, &state.validation).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid video spec.",
            format!("{}: {}", e.field, e.message),
        )
        .field(&e.field)
    })?;
    check_image_urls(&spec, &state.ssrf)?;
    check_videos(&spec, state).await?;
    let request = SubmitRequest {
        spec,
        webhook_url,
        owner: caller.key_id.clone(),
        idempotency,
    };
    let answer = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::Submit { request, reply },
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(super::manager_unavailable)?;
    answer.map_err(submit_error)
}

/// The answer to a submission the JobManager refused.
pub(super) fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::QueueFull {
            retry_after_secs, ..
        } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many queued jobs.",
            e.to_string(),
        )
        .retry_after(retry_after_secs),
        SubmitError::KeyQueueFull {
            retry_after_secs, ..
        } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many queued jobs for this key.",
            e.to_string(),
        )
        .retry_after(retry_after_secs),
        SubmitError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Server shutting down.",
            e.to_string(),
        )
        .retry_after(10),
        SubmitError::Store(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Could not store the job.",
            e.to_string(),
        )
        .retry_after(5),
        SubmitError::IdempotencyConflict { ref job_id } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key reused.",
            e.to_string(),
        )
        .with("jobId", job_id.to_string())
        .field("Idempotency-Key"),
    }
}

/// Submit a video spec (the contract's endpoint): `202` with the job's id at once.
///
/// `webhookUrl` is required: the `started` and then `completed` or `failed` webhooks go there.
/// With an `Idempotency-Key` the same key and body within 24 h answer the original job.
#[utoipa::path(post, path = "/api/generate-video-async", tag = "jobs",
    request_body(content = VideoSpecBody, content_type = "application/json", description = "The video spec, with webhookUrl."),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters; the same key and body within 24 h answer the original job.")),
    responses(
        (status = 202, description = "Accepted: the job is queued (or, for a replayed key, the original job).", body = Accepted),
        (status = 422, description = "This Idempotency-Key was used with another body.", body = ErrorBody),
    ))]
async fn generate_async(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    accept(&state, &caller, &headers, body, true).await
}

/// Submit a video spec with `webhookUrl` optional: follow the job by job-status or its event
/// stream (the studio and the CLI do).
#[utoipa::path(post, path = "/api/jobs", tag = "jobs",
    request_body(content = VideoSpecBody, content_type = "application/json", description = "The video spec; webhookUrl optional."),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters; the same key and body within 24 h answer the original job.")),
    responses(
        (status = 202, description = "Accepted: the job is queued (or, for a replayed key, the original job).", body = Accepted),
        (status = 422, description = "This Idempotency-Key was used with another body.", body = ErrorBody),
    ))]
async fn create_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    accept(&state, &caller, &headers, body, false).await
}

/// Reads the body and admits its job: the body parsed, its webhook URL checked (a `400` when
/// `require_hook` and there is none), its `Idempotency-Key` read, the job submitted. Returns the
/// admitted job and whether it has a webhook URL.
async fn parse_and_submit(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    require_hook: bool,
) -> Result<(Admitted, bool), ApiError> {
    let body = parse_body(headers, body, state.max_json_depth)?;
    let hook = webhook_url(&body, state)?;
    if hook.is_none() && require_hook {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Webhook URL is required for async video generation.",
            "Please provide a webhookUrl in your request body to receive status updates.",
        )
        .with(
            "hint",
            "Use /api/generate-flexible-video for synchronous generation without webhooks.",
        )
        .field("webhookUrl"));
    }
    let idem = idempotency(headers, &body)?;
    let has_hook = hook.is_some();
    let spec = if body.get("templateId").is_some() {
        super::templates::resolve(state, caller, &body).await?
    } else {
        body
    };
    Ok((submit(state, &spec, hook, caller, idem).await?, has_hook))
}

/// Admits a job and answers `202` with its id (or, for a replayed `Idempotency-Key`, the job
/// the key created, with `Idempotent-Replayed: true`).
async fn accept(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    require_hook: bool,
) -> Result<Response, ApiError> {
    let (admitted, has_hook) = parse_and_submit(state, caller, headers, body, require_hook).await?;
    let view = &admitted.snapshot;
    let id = view.job_id.to_string();
    let body = Accepted {
        success: true,
        job_id: id.clone(),
        status: view.status,
        message: if has_hook {
            "Video generation started. You will receive updates via webhook."
        } else {
            "Video generation started. Follow it at statusUrl or eventsUrl."
        }
        .into(),
        webhook_configured: has_hook,
        status_url: format!("/api/job-status/{id}"),
        events_url: format!("/api/job-events/{id}"),
        estimated_time: "3-15 minutes".into(),
        queue_position: view.queue_position,
    };
    let mut res = (StatusCode::ACCEPTED, Json(body)).into_response();
    res.headers_mut().insert(
        header::LOCATION,
        format!("/api/job-status/{id}").parse().expect("ascii id"),
    );
    if admitted.replayed {
        res.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(res)
}

/// The old blocking API: submit and wait for the video (`webhookUrl` optional).
///
/// Answers `200` with the `completed` webhook's fields, or `500` with `failed`'s; after
/// `http.blocking_timeout_secs` it answers `202` with the job to poll.
#[utoipa::path(post, path = "/api/generate-flexible-video", tag = "jobs",
    request_body(content = VideoSpecBody, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "The same key and body within 24 h wait for the original job.")),
    responses(
        (status = 200, description = "The video is done: the completed event's fields and success: true.", body = serde_json::Value),
        (status = 202, description = "Still rendering after http.blocking_timeout_secs: poll statusUrl.", body = serde_json::Value),
        (status = 422, description = "This Idempotency-Key was used with another body.", body = ErrorBody),
        (status = 500, description = "The job failed: the failed event's fields and success: false.", body = serde_json::Value),
    ))]
async fn generate_blocking(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // A place among the blocking requests first: refused before anything is created.
    let _place = state.blocking.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many waiting requests.",
            format!(
                "This server holds at most {} blocking requests at once (http.max_blocking_requests); use POST /api/generate-video-async with a webhookUrl, or retry shortly. Nothing was created.",
                state.blocking_limit()
            ),
        )
        .retry_after(5)
    })?;
    let view = parse_and_submit(&state, &caller, &headers, body, false)
        .await?
        .0
        .snapshot;
    let job_id = view.job_id.clone();
    let id = job_id.clone();
    let wait = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::WaitFinished { job_id, reply },
        state.blocking_timeout.as_millis() as u64
    );
    let done = match wait {
        Ok(done) => done,
        Err(ractor::RactorErr::Timeout) => {
            // Waited as long as this server waits: the job goes on; the client polls for it.
            let status_url = format!("/api/job-status/{id}");
            let body = json!({
                "success": true,
                "jobId": id.to_string(),
                "status": state.views.get(&id).map(|v| v.status).unwrap_or(JobStatus::Processing),
                "statusUrl": status_url,
                "message": format!(
                    "Still rendering after {} s (http.blocking_timeout_secs); poll {status_url} or wait for the webhooks.",
                    state.blocking_timeout.as_secs_f64()
                ),
            });
            let mut res = (StatusCode::ACCEPTED, Json(body)).into_response();
            res.headers_mut().insert(
                header::LOCATION,
                status_url.parse().expect("ascii id"),
            );
            return Ok(res);
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Server shutting down.",
                format!("The server is restarting; job {id} is kept and resumes when it is back. Poll /api/job-status/{id}."),
            )
            .with("jobId", id.to_string())
            .retry_after(10))
        }
    };
    let at = chrono::Utc::now();
    let (status, event) = match (&done.status, &done.result, &done.error) {
        (JobStatus::Completed, Some(result), _) => (
            StatusCode::OK,
            WebhookEvent::completed(&done.job_id, result.clone(), at),
        ),
        (_, _, error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            WebhookEvent::failed(
                &done.job_id,
                error.as_deref().unwrap_or("Video generation failed"),
                at,
            ),
        ),
    };
    let event = event
        .with_metadata(done.metadata.clone())
        .as_cancelled(done.cancelled);
    let mut body = serde_json::to_value(event).expect("events serialise");
    body["success"] = json!(status == StatusCode::OK);
    Ok((status, Json(body)).into_response())
}

/// A job's status, progress and result.
#[utoipa::path(get, path = "/api/job-status/{job_id}", tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The job as it is now.", body = JobStatusBody),
        (status = 404, description = "No such job (or not the caller's).", body = ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = ErrorBody),
    ))]
async fn job_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Json<JobStatusBody>, ApiError> {
    Ok(Json(JobStatusBody::from(
        &state.job_view(&caller, &job_id).await?,
    )))
}

/// A list's `?limit=`: 20 when absent, else a whole number from 1 to [`MAX_LIST_LIMIT`].
pub(super) fn list_limit<E>(query: Result<Option<usize>, E>) -> Result<usize, ApiError> {
    match query {
        Ok(limit) => Some(limit.unwrap_or(20)),
        Err(_) => None,
    }
    .filter(|l| (1..=MAX_LIST_LIMIT).contains(l))
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Invalid limit.",
            format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT}."),
        )
        .field("limit")
    })
}

/// `?limit=` of `GET /api/jobs` and `GET /api/templates`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListQuery {
    /// How many to list.
    pub(super) limit: Option<usize>,
}

/// The most jobs `GET /api/jobs` lists at once.
pub(super) const MAX_LIST_LIMIT: usize = 100;

/// `GET /api/jobs?limit=N`: the caller's most recent jobs (newest first, 20 unless `limit`
/// says otherwise, at most 100), each as job-status shows it. Read from the published view.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 100, description = "How many (1–100, default 20).")),
    responses(
        (status = 200, description = "The caller's most recent jobs, newest first.", body = JobList),
        (status = 400, description = "limit is not a whole number from 1 to 100.", body = ErrorBody),
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let limit = list_limit(query.map(|q| q.0.limit))?;
    let mut mine: Vec<JobSnapshot> = state
        .views
        .iter()
        .filter(|v| !v.expired && caller.may_see(v))
        .map(|v| v.clone())
        .collect();
    // Newest first: admission time, then the job id for a stable order.
    mine.sort_by(|a, b| {
        (b.created_at.as_str(), b.job_id.as_str()).cmp(&(a.created_at.as_str(), a.job_id.as_str()))
    });
    let jobs: Vec<JobStatusBody> = mine.iter().take(limit).map(JobStatusBody::from).collect();
    Ok(Json(JobList { jobs }))
}

/// `POST /api/jobs/:jobId/cancel`: `202` once the job is cancelled (it is `failed` with
/// `error: "Cancelled"` and `cancelled: true`; its `failed` webhook is queued); `409` when it
/// had already finished.
#[utoipa::path(post, path = "/api/jobs/{job_id}/cancel", tag = "jobs",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 202, description = "Cancelled: the job is failed with error \"Cancelled\" and cancelled: true.", body = JobStatusBody),
        (status = 404, description = "No such job (or not the caller's).", body = ErrorBody),
        (status = 409, description = "The job had already finished.", body = ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = ErrorBody),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.job_view(&caller, &job_id).await?;
    let id = view.job_id.clone();
    let answer = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::Cancel { job_id: id, reply },
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(super::manager_unavailable)?;
    match answer {
        Ok(done) => {
            let mut body = serde_json::to_value(JobStatusBody::from(&done)).expect("serialises");
            body["success"] = json!(true);
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(CancelError::Finished(status)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "Job already finished.",
            format!(
                "Job '{job_id}' has already {}; there is nothing to cancel.",
                status.as_str()
            ),
        )
        .with("status", status.as_str())
        .field("jobId")),
        Err(CancelError::Unknown) => Err(ApiError::not_found_job(&job_id)),
    }
}
