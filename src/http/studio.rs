//! The web studio (`/`, `/studio/*`), the spec's JSON Schema and the example specs. The studio's
//! files are built into the binary (`studio/`, its one third-party file vendored by
//! `scripts/vendor-studio.sh`); nothing loads from the network.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::AppState;

/// The studio's files: path under `/studio/`, content type, bytes.
const FILES: [(&str, &str, &[u8]); 6] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../studio/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../studio/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../studio/style.css"),
    ),
    (
        "vendor/vanilla-jsoneditor.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../studio/vendor/vanilla-jsoneditor.js"),
    ),
    (
        "vendor/vanilla-jsoneditor.LICENSE.md",
        "text/plain; charset=utf-8",
        include_bytes!("../../studio/vendor/vanilla-jsoneditor.LICENSE.md"),
    ),
    (
        "vendor/VERSION",
        "text/plain; charset=utf-8",
        include_bytes!("../../studio/vendor/VERSION"),
    ),
];

/// The example specs `GET /api/examples` lists: name, title, JSON.
const EXAMPLES: [(&str, &str, &str); 3] = [
    (
        "quick",
        "Quick test: one second of draft video",
        include_str!("../../examples/quick.json"),
    ),
    (
        "tour",
        "Tour: four scene types, music, transitions (720p)",
        include_str!("../../examples/tour.json"),
    ),
    (
        "contract",
        "The contract's example (4k)",
        include_str!("../../examples/contract.json"),
    ),
];

/// The studio's pages (not API: not in the OpenAPI document).
pub(super) fn pages() -> Router<AppState> {
    Router::new().route("/", get(|| file("index.html"))).route(
        "/studio/{*path}",
        get(|Path(path): Path<String>| file_owned(path)),
    )
}

/// The example specs and the spec's JSON Schema.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(examples))
        .routes(routes!(schema))
}

async fn file_owned(path: String) -> Response {
    file(&path).await
}

async fn file(path: &str) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "Not found.",
            format!("The studio has no file '{path}'."),
        )
        .into_response(),
    }
}

/// `GET /api/examples`: the example specs, without `webhookUrl` (the studio follows jobs over
/// their event stream; a client adds its own URL).
#[utoipa::path(get, path = "/api/examples", tag = "server",
    responses((status = 200, description = "{\"examples\": [{name, title, spec}]}.", body = serde_json::Value)))]
async fn examples() -> Json<Value> {
    let list: Vec<Value> = EXAMPLES
        .iter()
        .map(|(name, title, text)| {
            let mut spec: Value = serde_json::from_str(text).expect("the examples are JSON");
            if let Some(o) = spec.as_object_mut() {
                o.remove("webhookUrl");
            }
            json!({"name": name, "title": title, "spec": spec})
        })
        .collect();
    Json(json!({ "examples": list }))
}

/// `GET /api/schema/video-spec.json`: the spec's JSON Schema with this server's themes, tracks
/// and limits.
#[utoipa::path(get, path = "/api/schema/video-spec.json", tag = "server",
    responses((status = 200, description = "The JSON Schema (draft-07) of a spec.", content_type = "application/schema+json", body = serde_json::Value)))]
async fn schema(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        Json(vidbuilder_domain::spec::schema::json_schema(
            &state.validation,
        )),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_example_is_a_json_object_with_scenes() {
        for (name, _, text) in super::EXAMPLES {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(v["scenes"].is_array(), "{name}");
        }
    }
}
