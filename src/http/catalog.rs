//! Health, themes and music listings.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(themes))
        .routes(routes!(music))
}

/// Liveness: answered from what the JobManager last published, without a message to it (a
/// busy or stuck manager does not make health checks queue behind it). Without a valid key (when
/// keys are on) only `status` is shown; versions and job counts are for key holders.
#[utoipa::path(get, path = "/api/health", tag = "server",
    responses((status = 200, description = "{\"status\": \"ok\"} (with a valid key, or without keys: versions and job counts too).", body = serde_json::Value)))]
async fn health(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let alive = s.manager.get_status() == ractor::ActorStatus::Running;
    let status = if alive && s.stats.borrow().store_ok {
        "ok"
    } else {
        "degraded"
    };
    if !super::auth::may_see_details(&s.auth, &headers) {
        return Json(json!({ "status": status }));
    }
    let stats = *s.stats.borrow();
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "ffmpeg": s.ffmpeg_version.as_str(),
        "jobs": stats,
        "http": s.connections.snapshot(),
    }))
}

/// The installed themes.
#[utoipa::path(get, path = "/api/themes", tag = "server",
    responses((status = 200, description = "{\"themes\": [{name, description, colors, font, easing}]}.", body = serde_json::Value)))]
async fn themes(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "themes": s.themes.as_ref() }))
}

/// The installed music tracks.
#[utoipa::path(get, path = "/api/music", tag = "server",
    responses((status = 200, description = "{\"tracks\": [...]}.", body = serde_json::Value)))]
async fn music(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "tracks": s.tracks.as_ref() }))
}

/// Liveness: the process serves HTTP. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "{\"status\": \"ok\"}.", body = serde_json::Value)))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: `200` when the JobManager runs, the store accepts writes, ffmpeg runs, object
/// storage answers (when configured) and no drain began; else `503` with the reasons (for load
/// balancers: send this node no new work). ffmpeg and storage are probed in the background, not
/// per request.
#[utoipa::path(get, path = "/readyz", tag = "server",
    responses(
        (status = 200, description = "{\"ready\": true, \"reasons\": []}.", body = serde_json::Value),
        (status = 503, description = "Not ready: reasons says why.", body = serde_json::Value),
    ))]
async fn readyz(State(s): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let stats = *s.stats.borrow();
    let probes = s.probes.borrow().clone();
    let mut reasons: Vec<String> = Vec::new();
    if s.manager.get_status() != ractor::ActorStatus::Running {
        reasons.push("the job manager is not running".into());
    }
    if let Some(why) = probes.ffmpeg {
        reasons.push(format!("ffmpeg cannot be run: {why}"));
    }
    if let Some(why) = probes.s3 {
        reasons.push(format!("object storage does not answer: {why}"));
    }
    if !stats.store_ok {
        reasons.push(
            "the job store refuses writes (disk full or failing); changes are held and retried"
                .into(),
        );
    }
    if stats.draining {
        reasons.push("the server is shutting down".into());
    }
    let ready = reasons.is_empty();
    let code = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "ready": ready, "reasons": reasons }))).into_response()
}
