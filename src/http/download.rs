//! `GET /api/download/:jobId` (and `/reel`): the finished MP4, with HTTP Range support; `/poster`
//! (and `/reel/poster`): its JPEG poster frame, while the local copy exists.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tower::ServiceExt;
use tower_http::services::ServeFile;
use vidbuilder_actors::manager::JobManagerMsg;
use vidbuilder_domain::job::{poster_of, JobSnapshot, JobStatus};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/download/{job_id}", get(download::<false, false>))
        .route("/api/download/{job_id}/reel", get(download::<true, false>))
        .route(
            "/api/download/{job_id}/poster",
            get(download::<false, true>),
        )
        .route(
            "/api/download/{job_id}/reel/poster",
            get(download::<true, true>),
        )
}

/// The video (or the reel), or with `POSTER` its poster JPEG.
async fn download<const REEL: bool, const POSTER: bool>(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let view = state.job_view(&caller, &job_id).await?;
    if POSTER {
        poster(&view, REEL, req).await
    } else {
        video(&state, view, REEL, req).await
    }
}

async fn poster(view: &JobSnapshot, reel: bool, req: Request<Body>) -> Result<Response, ApiError> {
    let video = if reel {
        view.files.reel.as_ref()
    } else {
        view.files.video.as_ref()
    };
    let path = video
        .filter(|_| view.status.is_terminal())
        .map(|v| poster_of(v))
        .filter(|p| p.exists());
    let Some(path) = path else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Poster not available.",
            "The poster exists once the video is rendered, beside its local copy.",
        )
        .with("jobId", view.job_id.to_string()));
    };
    let res = ServeFile::new_with_mime(&path, &"image/jpeg".parse().expect("mime"))
        .oneshot(req)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not read the poster.",
                e.to_string(),
            )
        })?;
    Ok(res.into_response())
}

async fn video(
    state: &AppState,
    view: JobSnapshot,
    reel: bool,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let id = view.job_id.clone();
    // A local copy is served while it exists (also after a failed upload); once only object
    // storage has the video, the client is redirected to a freshly signed URL.
    let local: Option<PathBuf> = if reel {
        view.files.reel.clone()
    } else {
        view.files.video.clone()
    };
    let local = local.filter(|p| view.status.is_terminal() && p.exists());
    let stored = view.result.as_ref().is_some_and(|r| {
        if reel {
            r.s3_upload.reels.is_some()
        } else {
            r.s3_upload.standard.is_some()
        }
    });
    if local.is_none() && stored {
        let job_id = id.clone();
        let url = ractor::call_t!(
            state.manager,
            |reply| JobManagerMsg::PresignDownload {
                job_id,
                reel,
                reply
            },
            super::ACTOR_CALL_TIMEOUT.as_millis() as u64
        )
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        return match url {
            Ok(url) => Ok(Redirect::temporary(&url).into_response()),
            Err(e) => {
                Err(
                    ApiError::new(StatusCode::BAD_GATEWAY, "Could not sign a download URL.", e)
                        .with("jobId", id.to_string()),
                )
            }
        };
    }
    let Some(path) = local else {
        let what = if reel && view.status == JobStatus::Completed {
            "This job has no reel video."
        } else {
            "The video is not ready yet."
        };
        let status = serde_json::to_value(view.status).unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Video not available.",
            format!("{what} Job status: {}.", status.as_str().unwrap_or("")),
        )
        .with("jobId", id.to_string())
        .with("status", status));
    };
    let mut res = ServeFile::new_with_mime(&path, &"video/mp4".parse().expect("mime"))
        .oneshot(req)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not read the video.",
                e.to_string(),
            )
        })?
        .into_response();
    if res.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Video not available.",
            "The video file is no longer on this server.",
        )
        .with("jobId", id.to_string()));
    }
    let name = if reel {
        format!("{id}-reel.mp4")
    } else {
        format!("{id}.mp4")
    };
    res.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).expect("ascii"),
    );
    Ok(res)
}
