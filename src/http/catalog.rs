//! Health, themes and music listings.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/themes", get(themes))
        .route("/api/music", get(music))
}

/// Liveness: answered from what the JobManager last published, without a message to it (a
/// busy or stuck manager does not make health checks queue behind it). Without a valid key (when
/// keys are on) only `status` is shown; versions and job counts are for key holders.
async fn health(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let alive = s.manager.get_status() == ractor::ActorStatus::Running;
    let status = if alive { "ok" } else { "degraded" };
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

async fn themes(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "themes": s.themes.as_ref() }))
}

async fn music(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "tracks": s.tracks.as_ref() }))
}
