//! The small traits through which the actors reach the outside world.
//!
//! The root crate implements them with the real things (frames + ffmpeg, reqwest); the actor tests
//! implement them with fakes. Everything that crosses these traits is plain data so that a future
//! cluster transport can carry it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use tokio_util::sync::CancellationToken;

use crate::job::JobId;
use crate::spec::VideoSpec;

/// What a RenderActor asks its renderer to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderRequest {
    pub job_id: JobId,
    /// 1 for the first try; grows when a render is retried.
    pub attempt: u32,
    pub spec: VideoSpec,
    /// Directory where the finished files go (created by the renderer if missing).
    /// Files must appear there only when complete (write to a temporary name, then rename).
    pub out_dir: PathBuf,
}

/// What a finished render produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderOutput {
    /// The landscape MP4.
    pub video: PathBuf,
    /// The vertical 1080×1920 MP4, when the spec asked for reels.
    pub reel: Option<PathBuf>,
    /// Length in seconds of the video.
    pub duration_secs: f64,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    /// A JPEG poster frame of the video (`<jobId>.jpg`, next to it).
    #[serde(default)]
    pub poster: Option<PathBuf>,
    /// The reel's poster (`<jobId>-reel.jpg`), when there is a reel.
    #[serde(default)]
    pub reel_poster: Option<PathBuf>,
}

/// Where a render is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenderPhase {
    /// Drawing frames and feeding them to the encoder.
    Rendering,
    /// All frames written; the encoder is finishing.
    Encoding,
    /// Muxing/moving files into place.
    Finalising,
}

/// A progress report from a renderer. `frames_done` never decreases within one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderProgress {
    pub phase: RenderPhase,
    pub frames_done: u64,
    pub frames_total: u64,
}

/// Callback a renderer calls with progress; cheap, callable from any thread.
pub type ProgressSink = Arc<dyn Fn(RenderProgress) + Send + Sync>;

/// Turns a spec into files.
#[async_trait]
pub trait Renderer: Send + Sync + 'static {
    /// Render `req`. Must return promptly (and kill any child process) once `cancel` fires.
    /// A panic here is caught by the actor system and fails the job through supervision.
    async fn render(
        &self,
        req: RenderRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderOutput, String>;
}

/// One HTTP POST of a webhook body.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    /// HTTP status when an answer came back.
    pub status: Option<u16>,
    /// Transport error (timeout, refused, reset, refused by policy…).
    pub error: Option<String>,
    /// `Retry-After` the receiver asked for, if any.
    pub retry_after: Option<Duration>,
    /// True when retrying can never help (e.g. a URL refused by policy).
    pub permanent: bool,
    pub latency_ms: u64,
}

impl AttemptOutcome {
    /// Any 2xx is success; everything else (3xx included) is a failure.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

/// Sends webhook POSTs.
#[async_trait]
pub trait WebhookTransport: Send + Sync + 'static {
    async fn post(&self, req: WebhookRequest) -> AttemptOutcome;
}

/// One file to put in object storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadFile {
    pub path: PathBuf,
    /// The object key, e.g. `videos/2025-11-12/standard/abc123def456.mp4`.
    pub key: String,
    pub content_type: String,
}

/// Why an upload or a presign failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct UploadError {
    pub message: String,
    /// True when trying again may help (network, 5xx, throttling); false for e.g. bad credentials
    /// or a missing bucket.
    pub transient: bool,
}

/// Called with (bytes uploaded, bytes in all) as an upload goes; cheap, callable from any task.
pub type UploadProgressSink = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Puts finished files in object storage (S3 and compatibles) and signs URLs to them.
#[async_trait]
pub trait Uploader: Send + Sync + 'static {
    /// Uploads one file (multipart above a size threshold, parts concurrently within a limit),
    /// with `content-type` and the job id as metadata. Uploading the same key again replaces it.
    async fn upload(
        &self,
        file: &UploadFile,
        job_id: &JobId,
        progress: UploadProgressSink,
    ) -> Result<(), UploadError>;
    /// A presigned GET URL for `key`, valid for `expires` (at most 7 days).
    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, UploadError>;
}
