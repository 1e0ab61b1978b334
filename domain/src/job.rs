//! Job identity, the public job states and the read view the HTTP layer serves.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A job id: 12 lowercase hex characters like the contract's `abc123def456`, drawn from a v4 UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn new() -> JobId {
        let u = uuid::Uuid::new_v4().simple().to_string();
        JobId(u[..16].to_string())
    }

    /// Accepts only ids of the shape we generate, so an id can be used safely in file names.
    pub fn parse(s: &str) -> Option<JobId> {
        let ok = (8..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        ok.then(|| JobId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
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
pub enum JobStatus {
    Queued,
    Processing,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
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
}

/// `s3Upload` block: `{"enabled": false}` until S3 is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Upload {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard: Option<S3Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reels: Option<S3Object>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Object {
    pub s3_key: String,
    pub signed_url: String,
    pub expires_in: String,
}

/// What a completed job reports: the fields of the `completed` webhook, of the blocking endpoint's
/// answer and of `job-status` once done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub video_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reels_url: Option<String>,
    /// Seconds, as the contract shows (`13`); fractional when the scenes are.
    pub duration: f64,
    pub scenes: usize,
    pub reels_generated: bool,
    pub s3_upload: S3Upload,
    /// `"180s"`.
    pub render_time: String,
    /// A JPEG poster frame of the video (`/api/download/:jobId/poster`; the reel's is at
    /// `/api/download/:jobId/reel/poster`). Not in the contract; additive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster_url: Option<String>,
}

/// Local files of a finished job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFiles {
    pub video: Option<PathBuf>,
    pub reel: Option<PathBuf>,
}

/// The poster JPEG the renderer writes beside a video (`<jobId>.jpg` beside `<jobId>.mp4`).
pub fn poster_of(video: &std::path::Path) -> PathBuf {
    video.with_extension("jpg")
}

/// The read view of one job that the JobManager writes and the HTTP layer reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: JobId,
    pub status: JobStatus,
    pub progress: u8,
    pub message: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// 1-based position in the admission queue while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The API key id that created the job; never serialised.
    #[serde(skip)]
    pub owner: Option<String>,
    /// Removed by retention: status answers 410 Gone.
    #[serde(skip)]
    pub expired: bool,
    /// The job's files on this node (also after a failed upload); never serialised.
    #[serde(skip)]
    pub files: JobFiles,
}
