//! `GET /api/download/:jobId` (and `/reel`, `/outputs/:ratio`): the finished video (MP4, WebM or
//! GIF, as the spec's `format`), with HTTP Range support; `/poster` (and `/reel/poster`,
//! `/outputs/:ratio/poster`): its JPEG poster frame, while the local copy exists; `/captions`: the
//! spec's captions as WebVTT.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_actors::manager::JobManagerMsg;
use vidbuilder_domain::job::{poster_of, JobSnapshot, JobStatus};
use vidbuilder_domain::spec::{AspectRatio, Format};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(video_file))
        .routes(routes!(reel_file))
        .routes(routes!(video_poster))
        .routes(routes!(reel_poster))
        .routes(routes!(captions_file))
        .routes(routes!(output_file))
        .routes(routes!(output_poster))
}

/// One aspect ratio's video (`outputs` in the job's result): `16x9`, `9x16`, `1x1` or `4x5`
/// (also `16:9`…). HTTP Range supported; with S3 and no local copy, a redirect to a fresh signed
/// URL.
#[utoipa::path(get, path = "/api/download/{job_id}/outputs/{ratio}", tag = "downloads",
    params(
        ("job_id" = String, Path, description = "The job's id."),
        ("ratio" = String, Path, description = "An aspect ratio of the job: 16x9, 9x16, 1x1 or 4x5."),
    ),
    responses(
        (status = 200, description = "The video, in the job's `output.format`: video/mp4, video/webm or image/gif.", content((Vec<u8> = "video/mp4"), (Vec<u8> = "video/webm"), (Vec<u8> = "image/gif"))),
        (status = 206, description = "The requested range.", content((Vec<u8> = "video/mp4"), (Vec<u8> = "video/webm"), (Vec<u8> = "image/gif"))),
        (status = 307, description = "With S3 and no local copy: a fresh presigned URL in Location."),
        (status = 404, description = "No such job, ratio or video (yet).", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
        (status = 416, description = "The range is outside the file."),
    ))]
async fn output_file(
    State(state): State<AppState>,
    Path((job_id, ratio)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let view = state.job_view(&caller, &job_id).await?;
    let which = which_output(&view, &ratio)?;
    video(&state, view, which, req).await
}

/// One aspect ratio's JPEG poster frame, while the local copy exists.
#[utoipa::path(get, path = "/api/download/{job_id}/outputs/{ratio}/poster", tag = "downloads",
    params(
        ("job_id" = String, Path, description = "The job's id."),
        ("ratio" = String, Path, description = "An aspect ratio of the job: 16x9, 9x16, 1x1 or 4x5."),
    ),
    responses(
        (status = 200, description = "The poster.", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such job, ratio or poster.", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
    ))]
async fn output_poster(
    State(state): State<AppState>,
    Path((job_id, ratio)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let view = state.job_view(&caller, &job_id).await?;
    let which = which_output(&view, &ratio)?;
    poster(&view, which, req).await
}

/// Which of a job's videos a download asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// The main video (`videoUrl`).
    Main,
    /// The reel (`reelsUrl`).
    Reel,
    /// Another aspect ratio.
    Extra(AspectRatio),
}

impl Which {
    /// The ratio the JobManager knows its object by (`None`: the main video).
    fn ratio(self) -> Option<AspectRatio> {
        match self {
            Which::Main => None,
            Which::Reel => Some(AspectRatio::Vertical),
            Which::Extra(r) => Some(r),
        }
    }
}

/// The video of `ratio` (a slug or a ratio) among a completed job's `outputs`.
fn which_output(view: &JobSnapshot, ratio: &str) -> Result<Which, ApiError> {
    let not_found = |message: String| {
        ApiError::new(StatusCode::NOT_FOUND, "Video not available.", message)
            .with("jobId", view.job_id.to_string())
            .with("ratio", ratio.to_string())
    };
    let Some(r) = AspectRatio::parse(ratio) else {
        return Err(not_found(format!(
            "'{ratio}' is not an aspect ratio: use 16x9, 9x16, 1x1 or 4x5"
        )));
    };
    let Some(result) = view
        .result
        .as_ref()
        .filter(|_| view.status == JobStatus::Completed)
    else {
        let status = serde_json::to_value(view.status).unwrap_or_default();
        return Err(not_found(format!(
            "The video is not ready yet. Job status: {}.",
            status.as_str().unwrap_or("")
        )));
    };
    if result.outputs.is_empty() {
        // completed by a version without `outputs`: a landscape video and maybe a reel
        match r {
            AspectRatio::Landscape => return Ok(Which::Main),
            AspectRatio::Vertical if result.reels_url.is_some() => return Ok(Which::Reel),
            _ => {}
        }
    }
    let Some(entry) = result.outputs.get(r.as_str()) else {
        let have: Vec<&str> = result.outputs.keys().map(String::as_str).collect();
        return Err(not_found(format!(
            "This job has no {} video; it has: {}.",
            r.as_str(),
            have.join(", ")
        )));
    };
    Ok(if entry.video_url == result.video_url {
        Which::Main
    } else if result.reels_url.as_deref() == Some(entry.video_url.as_str()) {
        Which::Reel
    } else {
        Which::Extra(r)
    })
}

/// The spec's `captions` as a WebVTT file (the sidecar of the burned-in captions), from the
/// moment the job is accepted.
#[utoipa::path(get, path = "/api/download/{job_id}/captions", tag = "downloads",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The captions.", content_type = "text/vtt", body = String),
        (status = 404, description = "No such job, or it has no captions.", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
    ))]
async fn captions_file(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let view = state.job_view(&caller, &job_id).await?;
    let id = view.job_id.clone();
    let vtt = ractor::call_t!(
        state.manager,
        |reply| JobManagerMsg::Captions {
            job_id: id.clone(),
            reply
        },
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The job manager did not answer.",
            e.to_string(),
        )
    })?;
    match vtt {
        Some(text) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/vtt; charset=utf-8"),
            )],
            text,
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "No captions.",
            "This job's spec has no captions.",
        )
        .with("jobId", id.to_string())),
    }
}

/// The finished MP4 (HTTP Range supported); with S3 and no local copy, a redirect to a fresh
/// signed URL.
#[utoipa::path(get, path = "/api/download/{job_id}", tag = "downloads",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The video, in the job's `output.format`: video/mp4, video/webm or image/gif.", content((Vec<u8> = "video/mp4"), (Vec<u8> = "video/webm"), (Vec<u8> = "image/gif"))),
        (status = 206, description = "The requested range.", content((Vec<u8> = "video/mp4"), (Vec<u8> = "video/webm"), (Vec<u8> = "image/gif"))),
        (status = 307, description = "With S3 and no local copy: a fresh presigned URL in Location."),
        (status = 404, description = "No such job, or no video (yet).", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
        (status = 416, description = "The range is outside the file."),
    ))]
async fn video_file(
    state: State<AppState>,
    path: Path<String>,
    caller: Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    download::<false, false>(state, path, caller, req).await
}

/// The vertical reel, when `generateReels` was true.
#[utoipa::path(get, path = "/api/download/{job_id}/reel", tag = "downloads",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The reel, in the job's `output.format`: video/mp4, video/webm or image/gif.", content((Vec<u8> = "video/mp4"), (Vec<u8> = "video/webm"), (Vec<u8> = "image/gif"))),
        (status = 206, description = "The requested range.", content((Vec<u8> = "video/mp4"), (Vec<u8> = "video/webm"), (Vec<u8> = "image/gif"))),
        (status = 307, description = "With S3 and no local copy: a fresh presigned URL in Location."),
        (status = 404, description = "No such job, or no reel.", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
        (status = 416, description = "The range is outside the file."),
    ))]
async fn reel_file(
    state: State<AppState>,
    path: Path<String>,
    caller: Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    download::<true, false>(state, path, caller, req).await
}

/// The video's JPEG poster frame, while the local copy exists.
#[utoipa::path(get, path = "/api/download/{job_id}/poster", tag = "downloads",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The poster.", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such job, or no poster.", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
    ))]
async fn video_poster(
    state: State<AppState>,
    path: Path<String>,
    caller: Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    download::<false, true>(state, path, caller, req).await
}

/// The reel's JPEG poster frame.
#[utoipa::path(get, path = "/api/download/{job_id}/reel/poster", tag = "downloads",
    params(("job_id" = String, Path, description = "The job's id.")),
    responses(
        (status = 200, description = "The reel's poster.", content_type = "image/jpeg", body = Vec<u8>),
        (status = 404, description = "No such job, or no poster.", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
    ))]
async fn reel_poster(
    state: State<AppState>,
    path: Path<String>,
    caller: Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    download::<true, true>(state, path, caller, req).await
}

/// The video (or the reel), or with `POSTER` its poster JPEG.
async fn download<const REEL: bool, const POSTER: bool>(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Extension(caller): Extension<Caller>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let view = state.job_view(&caller, &job_id).await?;
    let which = if REEL { Which::Reel } else { Which::Main };
    if POSTER {
        poster(&view, which, req).await
    } else {
        video(&state, view, which, req).await
    }
}

/// Where a job's video of `which` is on this node, if it is.
fn local_file(view: &JobSnapshot, which: Which) -> Option<&PathBuf> {
    match which {
        Which::Main => view.files.video.as_ref(),
        Which::Reel => view.files.reel.as_ref(),
        Which::Extra(r) => view
            .files
            .extras
            .iter()
            .find(|(ratio, _)| *ratio == r)
            .map(|(_, p)| p),
    }
}

async fn poster(
    view: &JobSnapshot,
    which: Which,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let path = local_file(view, which)
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
    which: Which,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let id = view.job_id.clone();
    let reel = which == Which::Reel;
    // A local copy is served while it exists (also after a failed upload); once only object
    // storage has the video, the client is redirected to a freshly signed URL.
    let local = local_file(&view, which)
        .cloned()
        .filter(|p| view.status.is_terminal() && p.exists());
    let stored = view.result.as_ref().is_some_and(|r| match which {
        Which::Main => r.s3_upload.standard.is_some(),
        Which::Reel => r.s3_upload.reels.is_some(),
        Which::Extra(ratio) => r
            .outputs
            .get(ratio.as_str())
            .is_some_and(|o| o.s3_key.is_some()),
    });
    if local.is_none() && stored {
        let job_id = id.clone();
        let ratio = which.ratio();
        let url = ractor::call_t!(
            state.manager,
            |reply| JobManagerMsg::PresignDownload {
                job_id,
                ratio,
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
    let format = Format::of_path(&path);
    let mut res = ServeFile::new_with_mime(&path, &format.mime().parse().expect("mime"))
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
    let ext = format.extension();
    let name = match which {
        Which::Main => format!("{id}.{ext}"),
        Which::Reel => format!("{id}-reel.{ext}"),
        Which::Extra(r) => format!("{id}-{}.{ext}", r.slug()),
    };
    res.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).expect("ascii"),
    );
    Ok(res)
}
