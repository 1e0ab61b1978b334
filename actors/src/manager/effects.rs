//! What the JobManager's decisions ask the actor to do.

use std::path::PathBuf;
use std::time::Duration;

use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::job::JobId;
use vidbuilder_domain::ports::{RenderRequest, UploadFile};

use super::DrainReport;

/// One thing the actor must carry out, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Save the job's record and, in the same transaction, the outbox row of `event` (when the
    /// job has a webhook URL); then hand the delivery to the WebhookActor.
    Persist {
        job: JobId,
        event: Option<Box<WebhookEvent>>,
    },
    /// Spawn a RenderActor for this attempt, linked to the manager.
    SpawnRender(RenderRequest),
    /// Stop the job's RenderActor: its render returned (or the job ended).
    StopRender(JobId),
    /// Kill the job's RenderActor (stalled, or the drain's grace is over); its exit comes back
    /// as a supervision event.
    KillRender(JobId),
    /// Send `Restart` for the job after `after` (the timer is kept so it can be aborted).
    ScheduleRestart { job: JobId, after: Duration },
    /// The job had rendered before a restart: check which of these files are still there, then
    /// call `Core::resume_upload`.
    ResumeUpload {
        job: JobId,
        video: PathBuf,
        reel: Option<PathBuf>,
    },
    /// Hand the files to the UploadActor.
    Upload {
        job: JobId,
        attempt: u32,
        files: Vec<UploadFile>,
    },
    /// Remove these files of a job (missing ones are fine).
    RemoveFiles { job: JobId, files: Vec<PathBuf> },
    /// Expire the job in the store (a tombstone stays), then call `Core::expired`.
    Expire(JobId),
    /// Remove partial files that renders a crash interrupted left behind.
    DiscardPartials,
    /// The job reached its terminal state: answer the callers waiting for it.
    Finished(JobId),
    /// Answer the drain; nothing more finishes in this process, so release every waiter.
    DrainDone(DrainReport),
}
