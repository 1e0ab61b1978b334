//! `GET /metrics` (Prometheus text format) and the middleware that counts HTTP requests by route
//! and status. Gauges of jobs by status, the queue and running renders are set from the view and
//! the counts the JobManager publishes when scraped (no message to it).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_domain::job::JobStatus;

use super::error::ApiError;
use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Prometheus metrics: jobs by status, queue depth, running renders, render seconds and frames/s,
/// webhook attempts by result and their latency, S3 bytes and errors, HTTP requests by route and
/// status. With API keys configured, a valid key is required.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses(
        (status = 200, description = "Prometheus text format.", content_type = "text/plain", body = String),
        (status = 401, description = "API keys are configured and this request has no valid key.", body = super::openapi::ErrorBody),
    ))]
async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !super::auth::may_see_details(&state.auth, &headers) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized.",
            "Metrics need a valid API key (Authorization: Bearer KEY).",
        )
        .into_response();
    }
    let stats = *state.stats.borrow();
    metrics::gauge!("vidbuilder_queue_depth").set(stats.queued as f64);
    metrics::gauge!("vidbuilder_renders_running").set(stats.running as f64);
    metrics::gauge!("vidbuilder_render_slots").set(stats.max_concurrent as f64);
    metrics::gauge!("vidbuilder_store_ok").set(if stats.store_ok { 1.0 } else { 0.0 });
    let mut by_status = [0u64; 4];
    for view in state.views.iter() {
        let i = match view.status {
            JobStatus::Queued => 0,
            JobStatus::Processing => 1,
            JobStatus::Completed => 2,
            JobStatus::Failed => 3,
        };
        by_status[i] += 1;
    }
    for (status, n) in ["queued", "processing", "completed", "failed"]
        .into_iter()
        .zip(by_status)
    {
        metrics::gauge!("vidbuilder_jobs", "status" => status).set(n as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts every request by its route (the pattern, not the path: ids do not make new series),
/// method and status, and records its duration.
pub(super) async fn track(req: Request<Body>, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("vidbuilder_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("vidbuilder_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    res
}
