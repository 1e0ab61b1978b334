//! What the JobManager's decisions ask the actor to do.

use std::path::PathBuf;
use std::time::Duration;

use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::job::JobId;
use vidbuilder_domain::ports::{RenderRequest, UploadFile};
use vidbuilder_domain::spec::AspectRatio;

use super::DrainReport;
use crate::wire::UploadTarget;

/// One thing the actor must carry out, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Save the job's record and, in the same transaction, the outbox row of `event` (when the
    /// job has a webhook URL); then hand the delivery to the WebhookActor.
    Persist {
        /// The job whose record is saved.
        job: JobId,
        /// The webhook event the change queues, if any.
        event: Option<Box<WebhookEvent>>,
    },
    /// Spawn a RenderActor for this attempt, linked to the manager.
    SpawnRender(RenderRequest),
    /// Send the attempt to a worker node (cluster mode): its progress and result come back as
    /// messages like a local render's.
    Dispatch {
        /// The worker's node name.
        node: String,
        /// The attempt to render.
        request: RenderRequest,
        /// Where the worker uploads the result, when object storage is configured.
        upload: Option<UploadTarget>,
    },
    /// Sign URLs for the objects a worker uploaded, then call `Core::upload_done`.
    Presign {
        /// The job.
        job: JobId,
        /// The attempt the objects belong to.
        attempt: u32,
        /// The object keys, the landscape video first.
        keys: Vec<String>,
    },
    /// Tell a worker to stop an attempt (superseded, stalled, or the drain's grace is over).
    CancelRemote {
        /// The worker's node name.
        node: String,
        /// The job.
        job: JobId,
        /// The attempt to stop.
        attempt: u32,
    },
    /// Stop the job's RenderActor: its render returned (or the job ended).
    StopRender(JobId),
    /// Kill the job's RenderActor (stalled, or the drain's grace is over); its exit comes back
    /// as a supervision event.
    KillRender(JobId),
    /// Send `Restart` for the job after `after` (the timer is kept so it can be aborted).
    ScheduleRestart {
        /// The job to run again.
        job: JobId,
        /// The backoff to wait first.
        after: Duration,
    },
    /// The job had rendered before a restart: check which of these files are still there, then
    /// call `Core::resume_upload`.
    ResumeUpload {
        /// The job to resume.
        job: JobId,
        /// Where its landscape video was rendered.
        video: PathBuf,
        /// Where its reel was rendered, if it has one.
        reel: Option<PathBuf>,
        /// Where its other aspect ratios were rendered.
        extras: Vec<(AspectRatio, PathBuf)>,
    },
    /// Hand the files to the UploadActor.
    Upload {
        /// The job whose files these are.
        job: JobId,
        /// The attempt they belong to (the upload's reports carry it back).
        attempt: u32,
        /// The files to upload, the landscape video first.
        files: Vec<UploadFile>,
    },
    /// Remove these files of a job (missing ones are fine).
    RemoveFiles {
        /// The job whose files these are (for the logs).
        job: JobId,
        /// The files to remove.
        files: Vec<PathBuf>,
    },
    /// Expire the job in the store (a tombstone stays), then call `Core::expired`.
    Expire(JobId),
    /// Remove partial files that renders a crash interrupted left behind.
    DiscardPartials,
    /// The job reached its terminal state: answer the callers waiting for it.
    Finished(JobId),
    /// Answer the drain; nothing more finishes in this process, so release every waiter.
    DrainDone(DrainReport),
}
