//! The HTTP API (axum). Handlers are thin: they parse, send a message to the JobManager or read
//! the job view it writes, and shape the JSON. They never call the renderer, storage or webhooks.

pub mod auth;
mod catalog;
mod cluster;
mod download;
pub mod error;
pub mod events;
mod jobs;
pub mod limits;
mod metrics;
pub mod openapi;
pub mod present;
pub mod serve;
mod studio;
mod templates;
mod webhooks;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use ractor::ActorRef;
use tower_http::trace::TraceLayer;
use vidbuilder_actors::manager::{JobManagerMsg, JobViews};
use vidbuilder_domain::job::JobSnapshot;
use vidbuilder_domain::{JobId, ValidationContext};

use error::ApiError;
use vidbuilder_render::{ThemeInfo, TrackInfo};

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The JobManager that jobs are submitted to.
    pub manager: ActorRef<JobManagerMsg>,
    /// The JobManager's live job snapshots, read by the status routes.
    pub views: JobViews,
    /// The JobManager's counts as it last published them (health reads these, not the actor).
    pub stats: tokio::sync::watch::Receiver<vidbuilder_actors::manager::ManagerStats>,
    /// Themes, tracks and limits that submitted specs are validated against.
    pub validation: Arc<ValidationContext>,
    /// The themes listed by `GET /api/themes`.
    pub themes: Arc<Vec<ThemeInfo>>,
    /// The music tracks listed by `GET /api/music`.
    pub tracks: Arc<Vec<TrackInfo>>,
    /// ffmpeg's version, reported by `GET /api/health`.
    pub ffmpeg_version: Arc<String>,
    /// Checks webhook URLs at submission.
    pub ssrf: Arc<vidbuilder_net::SsrfGuard>,
    /// Probes a spec's asset videos at submission.
    pub media: Arc<vidbuilder_render::video::AssetProber>,

    /// API keys (empty: open).
    pub auth: Arc<auth::ApiKeys>,
    /// Webhook signing secrets, per key: `GET /api/webhooks/secret` shows a key its own.
    pub signing: Arc<vidbuilder_actors::signing::SigningKeys>,
    /// Deepest array/object nesting a request body may have.
    pub max_json_depth: usize,
    /// `limits.max_batch_jobs`: most jobs one `POST /api/batch` creates.
    pub max_batch_jobs: usize,
    /// `limits.max_templates_per_key`: most templates one API key keeps.
    pub max_templates_per_key: usize,
    /// The cluster's worker nodes (empty on a single node), for `GET /api/cluster`.
    pub cluster: ClusterInfo,
    /// The HTTP server's connection counters (health details).
    pub connections: Arc<serve::ConnStats>,
    /// Places for blocking requests waiting at once (`http.max_blocking_requests`).
    pub blocking: Arc<tokio::sync::Semaphore>,
    /// `http.max_blocking_requests` (the semaphore's size).
    pub blocking_max: usize,
    /// The longest a blocking request waits (`http.blocking_timeout_secs`).
    pub blocking_timeout: std::time::Duration,
    /// The JobManager's change announcements (live progress streams subscribe).
    pub changes: vidbuilder_actors::manager::JobChanges,
    /// When this server started (Unix ms): the first part of live progress event ids.
    pub boot: u64,
    /// Turns true when the server stops: live progress streams end.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Places for live progress streams (`http.max_event_streams`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// `http.max_event_streams`.
    pub event_streams_max: usize,
    /// The Prometheus recorder `/metrics` renders.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// What the dependency probes last found (ffmpeg runs, object storage answers), for readiness.
    pub probes: tokio::sync::watch::Receiver<Probes>,
}

/// What the server's dependency probes (run every few seconds by `app.rs`, never by a request)
/// last found: why this node should get no work, if anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probes {
    /// ffmpeg could not be run: why.
    pub ffmpeg: Option<String>,
    /// Object storage is configured and did not answer: why.
    pub s3: Option<String>,
}

/// How long an HTTP handler waits for the JobManager's answer before it answers `503`.
pub const ACTOR_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The `503` of a JobManager that did not answer (stopped, or too busy to answer in time).
pub fn manager_unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!("the job manager did not answer: {e}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable.",
        "The job manager did not answer in time; nothing was changed. Retry shortly.",
    )
    .retry_after(5)
}

/// What `GET /api/cluster` shows besides the JobManager's slots.
#[derive(Clone, Default)]
pub struct ClusterInfo {
    /// Where this node accepts worker links (cluster mode).
    pub listen: Option<std::net::SocketAddr>,
    /// The workers as the ClusterActor sees them.
    pub views: vidbuilder_actors::cluster::registry::ClusterViews,
}

/// How the router guards itself.
#[derive(Clone, Default)]
pub struct RouterOptions {
    /// Largest accepted request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// CORS origins (`*`: any); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Per-key request rate; `None`: unlimited.
    pub rate_limits: Option<Arc<limits::RateLimits>>,
}

impl AppState {
    /// `http.max_blocking_requests`, as configured.
    pub fn blocking_limit(&self) -> usize {
        self.blocking_max
    }

    /// The view of a job the caller may see: 404 for unknown ids and for other keys' jobs, 410
    /// once retention removed it.
    /// Expired jobs are not in memory: an id the view does not know is looked up among the
    /// store's tombstones (through the JobManager).
    pub async fn job_view(
        &self,
        caller: &auth::Caller,
        job_id: &str,
    ) -> Result<JobSnapshot, ApiError> {
        let id = JobId::parse(job_id).ok_or_else(|| ApiError::not_found_job(job_id))?;
        let known = self.views.get(&id).map(|v| v.clone());
        let Some(view) = known else {
            let tombstone = ractor::call_t!(
                self.manager,
                |reply| JobManagerMsg::Tombstone {
                    job_id: id.clone(),
                    reply
                },
                ACTOR_CALL_TIMEOUT.as_millis() as u64
            )
            .map_err(manager_unavailable)?;
            return Err(match tombstone {
                Some(owner) if caller.may_see_owner(owner.as_deref()) => ApiError::gone_job(job_id),
                _ => ApiError::not_found_job(job_id),
            });
        };
        if !caller.may_see(&view) {
            return Err(ApiError::not_found_job(job_id));
        }
        if view.expired {
            return Err(ApiError::gone_job(job_id));
        }
        Ok(view)
    }
}

/// The whole API: every route, with the body limit, API-key check, rate limit, CORS and tracing layers.
pub fn router(state: AppState, opts: RouterOptions) -> Router {
    let (api, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(
        <openapi::ApiDoc as utoipa::OpenApi>::openapi(),
    )
    .merge(jobs::router())
    .merge(templates::router())
    .merge(events::router())
    .merge(studio::router())
    .merge(download::router())
    .merge(catalog::router())
    .merge(cluster::router())
    .merge(webhooks::router())
    .merge(metrics::router())
    .split_for_parts();
    let doc = openapi::document(doc, &state.validation, state.max_batch_jobs);
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .external_url_unchecked(openapi::OPENAPI_PATH, doc);
    let mut app = api
        .merge(studio::pages())
        .merge(docs)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "Not found.",
                "No such endpoint; see the README for the API.",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(opts.max_body_bytes));
    // Layers run outside in: CORS answers preflights before the key check, the key check sets
    // the Caller that the rate limit counts against.
    if let Some(limits) = opts.rate_limits {
        app = app.layer(axum::middleware::from_fn_with_state(
            limits,
            limits::rate_limit,
        ));
    }
    app = app.layer(axum::middleware::from_fn_with_state(
        state.auth.clone(),
        auth::require_key,
    ));
    if let Some(cors) = limits::cors(&opts.cors_origins) {
        app = app.layer(cors);
    }
    // Outermost: every request gets an `x-request-id` (the client's, or a new UUID), sent back and
    // put in the request's log span; then it is counted by route and status.
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    app.layer(axum::middleware::from_fn(metrics::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            request_id.clone(),
        ))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            request_id,
            tower_http::request_id::MakeRequestUuid,
        ))
        .with_state(state)
}
