//! The JobManager's messages, its settings and spawn arguments, and what its replies carry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use vidbuilder_domain::job::{JobId, JobSnapshot, S3Object};
use vidbuilder_domain::spec::{AspectRatio, VideoSpec};
use vidbuilder_domain::store::JobStore;
use vidbuilder_domain::template::{TemplateId, TemplateRecord};

use crate::cluster::coordinator::ClusterSettings;
use crate::manager::core::NodeSlots;
use crate::ports::{
    Artifacts, Links, RenderFailure, RenderOutput, RenderProgress, Renderer, UploadError, Uploader,
};
use crate::upload::UploadSettings;
use crate::webhook::WebhookMsg;
use crate::wire::{AttemptId, RenderedAttempt};

/// The read view the JobManager writes and the HTTP layer reads.
pub type JobViews = Arc<DashMap<JobId, JobSnapshot>>;

/// The JobManager's counts as it last published them: health checks read them without sending
/// the actor a message.
pub type StatsView = tokio::sync::watch::Sender<ManagerStats>;

/// Where the JobManager announces that a job's published snapshot changed (the job's id; the
/// snapshot is in [`JobViews`]). Live progress streams subscribe; a receiver that lags re-reads
/// the view.
pub type JobChanges = tokio::sync::broadcast::Sender<JobId>;

/// An admitted job: its snapshot, and whether it was admitted before (an `Idempotency-Key`
/// named it: nothing new was created).
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The job's snapshot now.
    pub snapshot: JobSnapshot,
    /// True when the request's `Idempotency-Key` named this existing job.
    pub replayed: bool,
}

/// A job to admit.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The validated spec.
    pub spec: VideoSpec,
    /// The contract's `webhookUrl`; `None`: no webhooks for this job.
    pub webhook_url: Option<String>,
    /// The API key id of the caller, if keys are configured.
    pub owner: Option<String>,
    /// The request's `Idempotency-Key` with its body's digest: the same key and body within
    /// 24 h answer the job they created.
    pub idempotency: Option<vidbuilder_domain::store::Idempotency>,
}

/// Why a job was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// `max_queued` jobs are already waiting.
    #[error("the queue is full ({queued} jobs waiting); try again later")]
    QueueFull {
        /// Jobs waiting now.
        queued: usize,
        /// Seconds the client should wait before trying again (for `Retry-After`; 5 to 300).
        retry_after_secs: u64,
    },
    /// This API key has `max_queued_per_key` jobs waiting already.
    #[error("this API key has {queued} jobs waiting, as many as it may ({limit}); try again when some have started")]
    KeyQueueFull {
        /// The key's jobs waiting now.
        queued: usize,
        /// `auth.max_queued_per_key`.
        limit: usize,
        /// Seconds the client should wait before trying again (for `Retry-After`; 5 to 300).
        retry_after_secs: u64,
    },
    /// A drain began: no new job is admitted.
    #[error("the server is shutting down; try again shortly")]
    ShuttingDown,
    /// The job could not be written to the store; the text says why.
    #[error("the job could not be stored: {0}")]
    Store(String),
    /// The `Idempotency-Key` was used within 24 h with a different body.
    #[error("this Idempotency-Key was used for job {job_id} with a different request body; use a new key for a new job")]
    IdempotencyConflict {
        /// The job the key created.
        job_id: JobId,
    },
}

/// Why no signed URL could be had for a stored video.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    /// The job is unknown or not completed, or that video is not in object storage.
    #[error("this job has no stored object")]
    NoObject,
    /// Object storage is not configured, or the upload worker did not answer.
    #[error("object storage is not available: {0}")]
    Unavailable(String),
    /// Object storage could not sign the URL.
    #[error("{0}")]
    Storage(UploadError),
}

/// The JobManager's messages. Local-only: in cluster mode the wire messages of
/// [`crate::wire`] reach it through the dispatcher, never these.
#[derive(RactorMessage)]
pub enum JobManagerMsg {
    /// Admit a job; the reply (once the job is durable) carries its snapshot (status `queued`).
    Submit {
        /// The job to admit.
        request: SubmitRequest,
        /// Gets the new job's snapshot (or the job its idempotency key named), or why it was
        /// refused.
        reply: RpcReplyPort<Result<Admitted, SubmitError>>,
    },
    /// The client cancels a job (see `Core::cancel`); the reply carries its snapshot after.
    Cancel {
        /// The job to cancel.
        job_id: JobId,
        /// Gets the cancelled job's snapshot, or why it could not be cancelled.
        reply: RpcReplyPort<Result<JobSnapshot, crate::manager::core::CancelError>>,
    },
    /// Admit several jobs of one owner at once (a batch): all of them, or none (the queue's room,
    /// the key's quota and the store are checked for the lot). A request whose
    /// `Idempotency-Key` names a job answers that job, as [`JobManagerMsg::Submit`] does.
    SubmitBatch {
        /// The jobs to admit, in order.
        requests: Vec<SubmitRequest>,
        /// Gets each job's snapshot in the requests' order, or why none was admitted.
        reply: RpcReplyPort<Result<Vec<Admitted>, SubmitError>>,
    },
    /// A request about stored templates (the HTTP layer's templates routes).
    Template(TemplateMsg),
    /// Reply once the job is completed or failed (at once if it already is).
    WaitFinished {
        /// The job to wait for.
        job_id: JobId,
        /// Gets the terminal snapshot; dropped unanswered for an unknown job, or when a drain ends.
        reply: RpcReplyPort<JobSnapshot>,
    },
    /// From a RenderActor.
    Progress {
        /// The job the report is about.
        job_id: JobId,
        /// The attempt that reports; a report of another attempt is ignored.
        attempt: u32,
        /// The (throttled) progress report.
        progress: RenderProgress,
    },
    /// From a RenderActor: its render returned.
    RenderDone {
        /// The job that was rendered.
        job_id: JobId,
        /// The attempt that ended; a result of another attempt is ignored.
        attempt: u32,
        /// The files made, or why there are none.
        result: Result<RenderOutput, RenderFailure>,
    },
    /// A restart's backoff elapsed: run the job again.
    Restart {
        /// The job whose backoff elapsed.
        job_id: JobId,
    },
    /// Periodic: liveness of renders, retention sweep, drain deadline.
    Tick,
    /// Stop starting jobs and refuse new ones; reply when no render runs, or at `grace`'s end after
    /// stopping the renders that remain (their jobs stay `processing` in the store and resume on
    /// the next start).
    Drain {
        /// How long the running renders get to finish.
        grace: Duration,
        /// Gets how the drain ended.
        reply: RpcReplyPort<DrainReport>,
    },
    /// Counts for health checks.
    Stats(RpcReplyPort<ManagerStats>),
    /// Whether an id unknown in the view is an expired job (answered from the store, which keeps
    /// tombstones out of memory): `Some(owner)` if it is.
    Tombstone {
        /// The id asked about.
        job_id: JobId,
        /// Gets the tombstone's owner, or `None`.
        reply: RpcReplyPort<Option<Option<String>>>,
    },
    /// From the UploadActor: bytes uploaded so far of a job's files.
    UploadProgress {
        /// The job being uploaded.
        job_id: JobId,
        /// The attempt the upload belongs to; reports of another attempt are ignored.
        attempt: u32,
        /// Bytes uploaded so far, over all of the job's files.
        done: u64,
        /// Bytes of all of the job's files.
        total: u64,
    },
    /// From the UploadActor: the job's files are stored (with signed URLs), or not.
    UploadDone {
        /// The job that was uploaded.
        job_id: JobId,
        /// The attempt the upload belongs to; results of another attempt are ignored.
        attempt: u32,
        /// The stored objects (the landscape video first, then the reel), or why the upload failed.
        result: Result<Vec<S3Object>, UploadError>,
    },
    /// A request for the WebhookActor (delivery log, redelivery): the HTTP layer speaks only to
    /// the JobManager, which forwards it.
    ToWebhooks(WebhookMsg),
    /// From the ClusterActor: a worker takes attempts, with this many slots.
    NodeUp {
        /// The worker's node name.
        node: String,
        /// Its render slots.
        capacity: usize,
    },
    /// From the ClusterActor: a worker is lost; its attempts fail over like crashed renders.
    NodeDown {
        /// The worker's node name.
        node: String,
        /// Why, in words.
        why: String,
    },
    /// From the ClusterActor: the attempts a worker says it is rendering (its heartbeat); those
    /// that are not current are cancelled there.
    NodeRunning {
        /// The worker's node name.
        node: String,
        /// What it renders.
        attempts: Vec<AttemptId>,
    },
    /// From the ClusterActor: a worker finished an attempt and holds its files.
    RemoteRendered {
        /// The worker's node name.
        node: String,
        /// The attempt.
        attempt: AttemptId,
        /// What it made.
        rendered: RenderedAttempt,
    },
    /// From the ClusterActor: a worker uploaded its render to object storage (these keys, the
    /// landscape video first) and the rest of its files were fetched here.
    RemoteStored {
        /// The job.
        job_id: JobId,
        /// The attempt.
        attempt: u32,
        /// The render, as this node has it (the uploaded videos are not here).
        output: RenderOutput,
        /// The uploaded objects' keys.
        keys: Vec<String>,
    },
    /// Every node's render slots (this node first), for `GET /api/cluster`.
    Nodes(RpcReplyPort<Vec<NodeSlots>>),
    /// A fresh signed URL for a completed job's stored video (`ratio` for one of its aspect
    /// ratios; the reel is `9:16`).
    PresignDownload {
        /// The completed job.
        job_id: JobId,
        /// `None`: the main video; otherwise the video of this ratio.
        ratio: Option<AspectRatio>,
        /// Gets the signed URL, or why there is none.
        reply: RpcReplyPort<Result<String, PresignError>>,
    },
    /// A job's captions as a WebVTT file (`None`: the job has none, or is not known here).
    Captions {
        /// The job.
        job_id: JobId,
        /// Gets the file's text.
        reply: RpcReplyPort<Option<String>>,
    },
}

/// Requests about templates: the JobManager keeps them in its store. Local-only.
pub enum TemplateMsg {
    /// Store a new template, unless its owner has `max_per_owner` already.
    Create {
        /// The template (id, owner and time filled in by the caller).
        template: TemplateRecord,
        /// The most templates one owner may keep (`templates.max_per_key`).
        max_per_owner: usize,
        /// Gets `Ok` once it is stored.
        reply: RpcReplyPort<Result<(), TemplateError>>,
    },
    /// A template by id (the caller checks its owner).
    Get {
        /// Its id.
        id: TemplateId,
        /// Gets it, or `None`.
        reply: RpcReplyPort<Result<Option<TemplateRecord>, TemplateError>>,
    },
    /// Delete a template.
    Delete {
        /// Its id.
        id: TemplateId,
        /// Gets whether there was one.
        reply: RpcReplyPort<Result<bool, TemplateError>>,
    },
    /// An owner's templates, newest first, with their total.
    List {
        /// The owner (`None`: made without an API key).
        owner: Option<String>,
        /// At most this many.
        limit: usize,
        /// Gets the templates and the owner's total.
        reply: RpcReplyPort<Result<(Vec<TemplateRecord>, usize), TemplateError>>,
    },
}

/// Why a template request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The owner has as many templates as it may keep.
    #[error(
        "this API key has {count} templates, as many as it may keep ({limit}); delete some first"
    )]
    TooMany {
        /// Templates the owner has.
        count: usize,
        /// `templates.max_per_key`.
        limit: usize,
    },
    /// The store failed; the text says why.
    #[error("the template store failed: {0}")]
    Store(String),
}

/// The JobManager's counts, for health checks (the answer to `Stats`, and what it publishes to
/// its [`StatsView`] after every message).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagerStats {
    /// Jobs known (any status).
    pub total: usize,
    /// Jobs waiting in the admission queue.
    pub queued: usize,
    /// Renders running now (uploads are not counted).
    pub running: usize,
    /// The most renders that run at once.
    pub max_concurrent: usize,
    /// The most jobs that may wait; more are refused with `QueueFull`.
    pub max_queued: usize,
    /// True once a drain began.
    pub draining: bool,
    /// False while the store refuses writes (changes are held and retried; not ready).
    pub store_ok: bool,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Renders that finished during the grace period.
    pub finished: usize,
    /// Renders stopped at the deadline, left to resume on the next start.
    pub interrupted: usize,
}

/// How the JobManager runs. The server builds it from `config/default.toml` (plus overrides):
/// that file is the one source of the defaults.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// The most renders that run at once (at least 1).
    pub max_concurrent: usize,
    /// The most jobs that may wait in the queue; more are refused with `QueueFull`.
    pub max_queued: usize,
    /// The most jobs one API key may have waiting (0: no per-key limit; jobs without an owner
    /// are not counted against any); more are refused with `KeyQueueFull`.
    pub max_queued_per_key: usize,
    /// Where renders put their files.
    pub out_dir: PathBuf,
    /// Restarts of one job's render allowed within `restart_window` before the job fails.
    pub max_restarts: u32,
    /// A job whose attempts crashes of the whole server interrupted this many times fails
    /// instead of running again (a graceful drain does not count).
    pub max_interrupted: u32,
    /// The window over which `max_restarts` counts a job's restarts.
    pub restart_window: Duration,
    /// Backoff before the first restart; doubles each time.
    pub restart_backoff: Duration,
    /// A render silent for this long is killed.
    pub stall_timeout: Duration,
    /// Finished jobs are removed this long after they finish (None: kept forever).
    pub retention: Option<Duration>,
    /// How often the liveness and drain checks run; the retention sweep runs on a tick once
    /// `min(60 s, retention / 4)` has passed since the last one.
    pub tick: Duration,
    /// Prepended to object keys (`prefix/videos/YYYY-MM-DD/standard/<jobId>.mp4`).
    pub s3_prefix: String,
    /// Remove the local files once they are in object storage.
    pub delete_local_after_upload: bool,
    /// This node's name (`node` in job-status for renders that run here).
    pub node_name: String,
    /// Cluster mode: workers on other nodes take attempts too, and `max_concurrent` (this node's
    /// own renders) may be 0.
    pub cluster: bool,
}

/// What the JobManager is spawned with.
pub struct JobManagerArgs {
    /// Makes the videos: each running job's RenderActor calls it.
    pub renderer: Arc<dyn Renderer>,
    /// The WebhookActor, which delivers the events the manager queues. The manager links it to
    /// itself: its death is a supervision event to the manager.
    pub webhooks: ActorRef<WebhookMsg>,
    /// How to start the WebhookActor again when it dies (it reloads pending deliveries from the
    /// store); `None`: it is not restarted.
    pub webhooks_respawn: Option<crate::webhook::WebhookArgs>,
    /// The read view the manager publishes snapshots to.
    pub views: JobViews,
    /// Where the manager announces each published change (live progress streams listen).
    pub changes: JobChanges,
    /// Where the manager publishes its counts (read with `subscribe()`).
    pub stats: StatsView,
    /// Durable storage: jobs are recovered from it at start and every change is written to it.
    pub store: Arc<dyn JobStore>,
    /// How the manager runs.
    pub settings: ManagerSettings,
    /// Download URLs for the contract's result fields.
    pub links: Arc<dyn Links>,
    /// The finished files on this node.
    pub artifacts: Arc<dyn Artifacts>,
    /// Object storage; `None` keeps videos on local disk only.
    pub uploader: Option<(Arc<dyn Uploader>, UploadSettings)>,
    /// Cluster mode: the ClusterActor's settings (the manager spawns it, linked); `None` on a
    /// single node.
    pub cluster: Option<ClusterSettings>,
}
