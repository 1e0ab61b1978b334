//! Health, themes and music listings.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use vidbuilder_actors::manager::JobManagerMsg;

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/themes", get(themes))
        .route("/api/music", get(music))
}

async fn health(State(s): State<AppState>) -> Json<Value> {
    let stats = ractor::call_t!(s.manager, JobManagerMsg::Stats, 2000).ok();
    Json(json!({
        "status": if stats.is_some() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "ffmpeg": s.ffmpeg_version.as_str(),
        "jobs": stats,
    }))
}

async fn themes(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "themes": s.themes.as_ref() }))
}

async fn music(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "tracks": s.tracks.as_ref() }))
}
