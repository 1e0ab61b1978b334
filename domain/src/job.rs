//! Job identity, the public job states and the read view the HTTP layer serves.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::{AspectRatio, Format, OutputRole, OutputShape};

/// A job id: lowercase hex like the contract's `abc123def456`. New ids are 16 characters drawn
/// from a v4 UUID; [`JobId::parse`] accepts 8 to 64.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id: the first 16 hex characters of a v4 UUID.
    // No `Default`: a missing or corrupt id must be an error, never a fresh random id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> JobId {
        let u = uuid::Uuid::new_v4().simple().to_string();
        JobId(u[..16].to_string())
    }

    /// Accepts only lowercase hex of 8 to 64 characters, so an id can be used safely in file names.
    pub fn parse(s: &str) -> Option<JobId> {
        let ok = (8..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        ok.then(|| JobId(s.to_string()))
    }

    /// The id as text, as it appears in URLs, object keys and file names.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The four public statuses of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobStatus {
    /// Admitted and waiting for a render slot.
    Queued,
    /// A render attempt or its upload is under way, or a retry is waiting for its backoff.
    Processing,
    /// Finished with a video (terminal).
    Completed,
    /// Finished without a video; the job's `error` says why (terminal).
    Failed,
}

impl JobStatus {
    /// True for `completed` and `failed`: the job will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }

    /// The contract's name: `queued`, `processing`, `completed` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }
}

/// Timestamps the way the contract writes them: `2025-11-12T18:30:00.000Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a job failed. Its `Display` is the job's `error` as the contract words it: the one place
/// these texts are written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// The render failed (after its restarts, when it may be retried).
    #[error("Failed to render video: {0}")]
    Render(crate::ports::RenderFailure),
    /// The render worker could not be started.
    #[error("Failed to start render worker: {0}")]
    NotStarted(String),
    /// The rendered files could not be put in object storage.
    #[error("Failed to upload to S3: {0}")]
    Upload(String),
    /// The client cancelled the job (`POST /api/jobs/:jobId/cancel`).
    #[error("Cancelled")]
    Cancelled,
}

/// `s3Upload` block: `{"enabled": false}` until S3 is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct S3Upload {
    /// True when the job's videos were put in object storage.
    pub enabled: bool,
    /// The landscape video's object, when uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard: Option<S3Object>,
    /// The reel's object, when a reel was uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reels: Option<S3Object>,
}

/// One uploaded video, as `s3Upload.standard` or `s3Upload.reels` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct S3Object {
    /// `s3Key`: the object key (see [`object_key`]).
    pub s3_key: String,
    /// `signedUrl`: a presigned GET URL to the object, valid for `expiresIn`.
    pub signed_url: String,
    /// `expiresIn`: how long the signed URL stays valid, in words (`"7 days"`).
    pub expires_in: String,
}

/// What a completed job reports: the fields of the `completed` webhook, of the blocking endpoint's
/// answer and of `job-status` once done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResult {
    /// `videoUrl`: where clients download the landscape video.
    pub video_url: String,
    /// `reelsUrl`: where clients download the vertical reel; `None` when no reel was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reels_url: Option<String>,
    /// Seconds, as the contract shows (`13`); fractional when the scenes are.
    pub duration: f64,
    /// `scenes`: how many scenes the video has.
    pub scenes: usize,
    /// `reelsGenerated`: whether a vertical reel was made.
    pub reels_generated: bool,
    /// `s3Upload`: where the videos are in object storage (`enabled: false` when they are not).
    pub s3_upload: S3Upload,
    /// `renderTime`: from the start of the last attempt to completion, in whole seconds (`"180s"`).
    pub render_time: String,
    /// A JPEG poster frame of the video (`/api/download/:jobId/poster`; the reel's is at
    /// `/api/download/:jobId/reel/poster`). Not in the contract; additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster_url: Option<String>,
    /// `outputs`: every file the job made, by aspect ratio (`"16:9"`, `"1:1"`…), the first ratio's
    /// being the one `videoUrl` names. Not in the contract; additive (absent in results stored
    /// by earlier versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputLinks>,
}

/// One entry of `outputs`: where one aspect ratio's video is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputLinks {
    /// `videoUrl`: where clients download it.
    pub video_url: String,
    /// `posterUrl`: its JPEG poster frame, while the local copy exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster_url: Option<String>,
    /// `s3Key`: its object key, when it was stored in object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_key: Option<String>,
    /// `signedUrl`: a presigned GET URL to the object, when stored (valid as `s3Upload` says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_url: Option<String>,
    /// Frame width, in pixels.
    pub width: u32,
    /// Frame height, in pixels.
    pub height: u32,
    /// `format`: `mp4`, `webm` or `gif`.
    pub format: Format,
}

/// Local files of a finished job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFiles {
    /// The landscape MP4 on this node; `None` before it is rendered or once removed.
    pub video: Option<PathBuf>,
    /// The vertical reel MP4 on this node, when one was rendered and is still here.
    pub reel: Option<PathBuf>,
    /// The other aspect ratios' videos on this node, while the main one is here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<(AspectRatio, PathBuf)>,
}

/// Which of a job's videos an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// The main video (the first aspect ratio).
    Standard,
    /// The vertical reel.
    Reels,
    /// Another aspect ratio's video.
    Ratio(AspectRatio),
}

impl ObjectKind {
    /// The kind of object an output is stored as.
    pub fn of(shape: &OutputShape) -> ObjectKind {
        match shape.role {
            OutputRole::Main => ObjectKind::Standard,
            OutputRole::Reel => ObjectKind::Reels,
            OutputRole::Extra => ObjectKind::Ratio(shape.ratio),
        }
    }
}

/// The object key of one of a job's MP4 videos, as the contract shows:
/// `{prefix/}videos/YYYY-MM-DD/{standard|reels}/{jobId}.mp4`, the date being the day of
/// `created_at` (a contract timestamp, UTC). A non-empty prefix is joined with exactly one `/`.
pub fn object_key(prefix: &str, created_at: &str, kind: ObjectKind, job_id: &JobId) -> String {
    object_key_as(prefix, created_at, kind, job_id, Format::Mp4)
}

/// [`object_key`] for a video in `format` (its extension); another ratio than the main one and
/// the reel is under its slug: `videos/YYYY-MM-DD/1x1/{jobId}.webm`.
pub fn object_key_as(
    prefix: &str,
    created_at: &str,
    kind: ObjectKind,
    job_id: &JobId,
    format: Format,
) -> String {
    let prefix = prefix.trim().trim_matches('/');
    let day = created_at.get(..10).unwrap_or("unknown");
    let variant = match kind {
        ObjectKind::Standard => "standard",
        ObjectKind::Reels => "reels",
        ObjectKind::Ratio(r) => r.slug(),
    };
    let rest = format!("videos/{day}/{variant}/{job_id}.{}", format.extension());
    if prefix.is_empty() {
        rest
    } else {
        format!("{prefix}/{rest}")
    }
}

/// Where an output of `shape` lives beside the job's main video `video` (same directory and
/// extension): the renderer names every output so (`<jobId>-1x1.mp4` beside `<jobId>.mp4`).
pub fn output_path(video: &std::path::Path, job_id: &JobId, shape: &OutputShape) -> PathBuf {
    let ext = video.extension().and_then(|e| e.to_str()).unwrap_or("mp4");
    video.with_file_name(format!("{}.{ext}", shape.stem(job_id.as_str())))
}

/// The poster JPEG the renderer writes beside a video (`<jobId>.jpg` beside `<jobId>.mp4`).
pub fn poster_of(video: &std::path::Path) -> PathBuf {
    video.with_extension("jpg")
}

/// Where a job is, as facts: the HTTP layer words them as `message` and `progress`.
#[derive(Debug, Clone, PartialEq)]
pub enum JobPhase {
    /// Waiting for a render slot.
    Queued,
    /// Interrupted by a restart of the server; waiting to run again.
    Resuming,
    /// A render attempt was started.
    Starting,
    /// Drawing frames (over every output: a reel doubles `frames_total`).
    Rendering {
        /// Frames drawn so far.
        frames_done: u64,
        /// Frames to draw in all.
        frames_total: u64,
    },
    /// All frames written; the encoder is finishing.
    Encoding,
    /// Muxing, posters, moving files into place.
    Finalising,
    /// Putting the files in object storage.
    Uploading {
        /// Bytes uploaded so far, over all of the job's files.
        bytes_done: u64,
        /// Bytes of all of the job's files.
        bytes_total: u64,
    },
    /// The attempt failed; the next one starts after `after`.
    Retrying {
        /// The backoff before the next attempt starts.
        after: std::time::Duration,
        /// Why the last attempt failed.
        failure: crate::ports::RenderFailure,
    },
    /// The job completed.
    Completed,
    /// The job failed.
    Failed,
}

/// What the JobManager knows of one job, published after every change for the HTTP layer to
/// read (and word: this type holds no message texts and no URLs of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    /// The job this snapshot describes.
    pub job_id: JobId,
    /// The public status (a job waiting to resume after a restart shows `queued`).
    pub status: JobStatus,
    /// Where the job is, in more detail than `status`.
    pub phase: JobPhase,
    /// When the job was admitted (contract timestamp).
    pub created_at: String,
    /// When its first render attempt started; `None` until then.
    pub started_at: Option<String>,
    /// When it completed or failed; `None` until then.
    pub finished_at: Option<String>,
    /// 1-based position in the admission queue while queued.
    pub queue_position: Option<usize>,
    /// The current (or last) render attempt, once one started.
    pub attempt: Option<u32>,
    /// The node that renders (or rendered) the current attempt, once one started.
    pub node: Option<String>,
    /// The contract's result fields, once completed.
    pub result: Option<JobResult>,
    /// The contract's error text, once failed.
    pub error: Option<String>,
    /// The API key id that created the job.
    pub owner: Option<String>,
    /// Removed by retention: status answers 410 Gone.
    pub expired: bool,
    /// The job's files on this node (also after a failed upload).
    pub files: JobFiles,
    /// The client cancelled the job (it is `failed` with `error: "Cancelled"`).
    pub cancelled: bool,
    /// The client's `metadata` object, echoed in job-status and webhooks.
    pub metadata: Option<serde_json::Value>,
    /// Publication number: every snapshot the JobManager publishes gets a higher one (live
    /// progress streams use it as their event id); 0 before publication.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> JobId {
        JobId::parse("abc123def4567890").expect("a valid job id")
    }

    #[test]
    fn object_keys_match_the_contract() {
        let at = "2025-11-12T23:59:59.000Z";
        assert_eq!(
            object_key("", at, ObjectKind::Standard, &id()),
            "videos/2025-11-12/standard/abc123def4567890.mp4"
        );
        assert_eq!(
            object_key("", at, ObjectKind::Reels, &id()),
            "videos/2025-11-12/reels/abc123def4567890.mp4"
        );
        for prefix in ["prod", "prod/", "/prod/", " prod "] {
            assert_eq!(
                object_key(prefix, at, ObjectKind::Standard, &id()),
                "prod/videos/2025-11-12/standard/abc123def4567890.mp4",
                "{prefix:?}"
            );
        }
        assert_eq!(
            object_key("a/b", at, ObjectKind::Standard, &id()),
            "a/b/videos/2025-11-12/standard/abc123def4567890.mp4"
        );
        // The day is the timestamp's, as the contract writes it (zero-padded).
        let at = timestamp(
            DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        assert_eq!(
            object_key("", &at, ObjectKind::Standard, &id()),
            "videos/2026-01-02/standard/abc123def4567890.mp4"
        );
    }
}
