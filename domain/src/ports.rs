//! The plain data that crosses the ports: what a renderer is asked and answers, one webhook
//! attempt, one file for object storage. The traits themselves live in the actors crate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::spec::{AspectRatio, VideoSpec};

/// What a RenderActor asks its renderer to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderRequest {
    /// The job to render.
    pub job_id: JobId,
    /// 1 for the first try; grows when a render is retried.
    pub attempt: u32,
    /// The validated spec to render.
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
    /// Width of the landscape video, in pixels.
    pub width: u32,
    /// Height of the landscape video, in pixels.
    pub height: u32,
    /// Frames in the landscape video.
    pub frames: u64,
    /// A JPEG poster frame of the video (`<jobId>.jpg`, next to it).
    #[serde(default)]
    pub poster: Option<PathBuf>,
    /// The reel's poster (`<jobId>-reel.jpg`), when there is a reel.
    #[serde(default)]
    pub reel_poster: Option<PathBuf>,
    /// The other aspect ratios' files (`<jobId>-1x1.mp4`…), in the spec's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<ExtraOutput>,
}

/// A rendered output in another aspect ratio than the main video and the reel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraOutput {
    /// Its ratio.
    pub ratio: AspectRatio,
    /// The video file.
    pub video: PathBuf,
    /// Its JPEG poster frame.
    pub poster: Option<PathBuf>,
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
    /// The render's current phase.
    pub phase: RenderPhase,
    /// Frames drawn so far, over every output.
    pub frames_done: u64,
    /// Frames to draw in all, over every output (a reel doubles it).
    pub frames_total: u64,
}

/// Why a render attempt produced no video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RenderFailureKind {
    /// The render worker panicked, or its actor failed or stopped.
    Crashed,
    /// No progress within the stall timeout: it was killed.
    Stalled,
    /// The encoder (ffmpeg) failed, or could not be started.
    Encoder,
    /// The spec cannot be rendered as given (an unknown theme or track, an image that cannot be
    /// loaded).
    InvalidInput,
    /// A file could not be read or written.
    Io,
    /// Stopped on request.
    Cancelled,
}

/// A failed render attempt: its kind, and the human detail (`Display` is the detail alone; the
/// contract's `Failed to render video: …` prefix is added where the job's error is written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{detail}")]
pub struct RenderFailure {
    /// What kind of failure it was.
    pub kind: RenderFailureKind,
    /// The human detail (what `Display` shows).
    pub detail: String,
}

impl RenderFailure {
    /// A failure of `kind` with its human detail.
    pub fn new(kind: RenderFailureKind, detail: impl Into<String>) -> Self {
        RenderFailure {
            kind,
            detail: detail.into(),
        }
    }
}

/// Callback a renderer calls with progress; cheap, callable from any thread.
pub type ProgressSink = Arc<dyn Fn(RenderProgress) + Send + Sync>;

/// One HTTP POST of a webhook body.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// The receiver's URL (the job's `webhookUrl`).
    pub url: String,
    /// `content-type`, `webhook-id`, `webhook-timestamp` and, with a secret, the signatures.
    pub headers: Vec<(String, String)>,
    /// The serialised event: exactly the bytes that were signed.
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
    /// Milliseconds from sending the POST to its answer or error.
    pub latency_ms: u64,
}

impl AttemptOutcome {
    /// Any 2xx is success; everything else (3xx included) is a failure.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }
}

/// One file to put in object storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadFile {
    /// The local file to upload.
    pub path: PathBuf,
    /// The object key, e.g. `videos/2025-11-12/standard/abc123def456.mp4`.
    pub key: String,
    /// The object's MIME type (`video/mp4` for the videos).
    pub content_type: String,
}

/// Why an upload or a presign failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct UploadError {
    /// What went wrong (quoted in the job's `error` when an upload fails).
    pub message: String,
    /// True when trying again may help (network, 5xx, throttling); false for e.g. bad credentials
    /// or a missing bucket.
    pub transient: bool,
}

/// Called with (bytes uploaded, bytes in all) as an upload goes; cheap, callable from any task.
pub type UploadProgressSink = Arc<dyn Fn(u64, u64) + Send + Sync>;
