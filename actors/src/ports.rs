//! The small traits through which the actors reach the outside world.
//!
//! The server crate implements them with the real things (frames + ffmpeg, reqwest, S3); the actor
//! tests implement them with fakes. The plain data that crosses them lives in
//! [`vidbuilder_domain::ports`] and is re-exported here.

use std::time::Duration;

use async_trait::async_trait;

pub use tokio_util::sync::CancellationToken;
pub use vidbuilder_domain::ports::*;

use vidbuilder_domain::job::JobId;

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
    ) -> Result<RenderOutput, RenderFailure>;
}

/// Sends webhook POSTs.
#[async_trait]
pub trait WebhookTransport: Send + Sync + 'static {
    async fn post(&self, req: WebhookRequest) -> AttemptOutcome;
}

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
