//! The small traits through which the actors reach the outside world.
//!
//! The server crate implements them with the real things (frames + ffmpeg, reqwest, S3); the actor
//! tests implement them with fakes. The plain data that crosses them lives in
//! [`vidbuilder_domain::ports`] and is re-exported here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

pub use tokio_util::sync::CancellationToken;
pub use vidbuilder_domain::ports::*;

use vidbuilder_domain::job::JobId;
pub use vidbuilder_domain::job::{object_key, object_key_as, ObjectKind};
pub use vidbuilder_domain::spec::AspectRatio;

/// Turns a spec into files.
#[async_trait]
pub trait Renderer: Send + Sync + 'static {
    /// Render `req`. Must return promptly (and kill any child process) once `cancel` fires.
    /// A panic here is caught by the actor system and reaches the JobManager through supervision:
    /// like an error, it fails the attempt, which is restarted within the restart limit.
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
    /// Sends one POST and reports how it went; transport errors are part of the outcome.
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

/// Where clients download a job's files. The HTTP layer owns its routes; the JobManager asks it
/// for the URLs that the contract's result fields carry.
pub trait Links: Send + Sync + 'static {
    /// `videoUrl`.
    fn video(&self, job: &JobId) -> String;
    /// `reelsUrl`.
    fn reel(&self, job: &JobId) -> String;
    /// `posterUrl`.
    fn poster(&self, job: &JobId) -> String;
    /// `outputs[ratio].videoUrl` of a ratio that is neither the main video nor the reel.
    fn output(&self, job: &JobId, ratio: AspectRatio) -> String;
    /// `outputs[ratio].posterUrl` of any ratio but the main one (whose poster is `posterUrl`).
    fn output_poster(&self, job: &JobId, ratio: AspectRatio) -> String;
}

/// Finished files as cluster mode moves them between nodes: a worker reads and hashes them, the
/// coordinator writes them in pieces and moves them into place once their checksum matches.
/// Blocking calls: the actors run them on tokio's blocking pool.
pub trait Transfer: Send + Sync + 'static {
    /// Up to `len` bytes of `path` from `offset` (fewer at the end of the file).
    fn read_chunk(&self, path: &Path, offset: u64, len: u32) -> std::io::Result<Vec<u8>>;
    /// The size and the hex SHA-256 of a file.
    fn digest(&self, path: &Path) -> std::io::Result<(u64, String)>;
    /// Writes `data` at `offset` of a partial file (created, or truncated, when `offset` is 0).
    fn write_chunk(&self, path: &Path, offset: u64, data: &[u8]) -> std::io::Result<()>;
    /// Moves a complete partial file to its final name.
    fn commit(&self, partial: &Path, path: &Path) -> std::io::Result<()>;
    /// Creates a directory (and its parents); an existing one is fine.
    fn create_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Removes a file; a missing one is fine.
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    /// Removes a directory of files (a worker's attempt directory) and all it holds.
    fn remove_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The finished files of jobs on this node, as the JobManager and the UploadActor may touch them:
/// the actors never call the filesystem themselves.
pub trait Artifacts: Send + Sync + 'static {
    /// The size of a finished file, or `None` when it is not there.
    fn size(&self, path: &Path) -> Option<u64>;
    /// Removes files; a missing one is fine. Returns those that could not be removed, with why.
    fn remove(&self, files: &[PathBuf]) -> Vec<(PathBuf, String)>;
    /// Removes the partial files of renders that a crash interrupted.
    fn discard_partials(&self);
}
