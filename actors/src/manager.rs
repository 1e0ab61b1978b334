//! The JobManager: owner of every job's state machine, the FIFO admission queue and the
//! concurrency limit.
//!
//! ```text
//! Submit ─► queued ──(slot free)──► processing ──RenderDone(Ok)──► completed
//!                                     │   ▲
//!        render error / crash / stall │   │ restart with backoff (at most N in a window)
//!                                     ▼   │
//!                                   (retrying) ──limit reached──► failed
//! ```
//! Every change is written to the [`JobStore`] first (a 202 is sent only once the job is durable;
//! a webhook's outbox row is written in the same transaction as the change it reports), then to
//! the [`JobViews`] map that the HTTP layer reads. On start the manager recovers from the store:
//! finished jobs are served again, queued and interrupted jobs run again in admission order.
//!
//! The manager overrides `handle_supervisor_evt`, so a child's exit never stops it. A RenderActor
//! that reports no progress for `stall_timeout` is killed (its drop guard cancels the renderer,
//! which kills ffmpeg) and handled like a crash.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use dashmap::DashMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use ractor_cluster::RactorMessage;
use tokio::task::AbortHandle;
use tracing::{error, info, warn};

use crate::ports::{
    RenderFailure, RenderFailureKind, RenderOutput, RenderPhase, RenderProgress, RenderRequest,
    Renderer, UploadError, UploadFile, Uploader,
};
use crate::render::{RenderActor, RenderArgs};
use crate::upload::{UploadActor, UploadArgs, UploadMsg, UploadSettings};
use crate::webhook::{now_ms, Delivery, WebhookMsg};
use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::job::{
    timestamp, JobFailure, JobFiles, JobId, JobResult, JobStatus, JobView, S3Object, S3Upload,
};
use vidbuilder_domain::spec::VideoSpec;
use vidbuilder_domain::store::{JobRecord, JobStore};

/// The read view the JobManager writes and the HTTP layer reads.
pub type JobViews = Arc<DashMap<JobId, JobView>>;

/// A job to admit.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub spec: VideoSpec,
    pub webhook_url: Option<String>,
    /// The API key id of the caller, if keys are configured.
    pub owner: Option<String>,
}

/// Why a job was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({queued} jobs waiting); try again later")]
    QueueFull {
        queued: usize,
        retry_after_secs: u64,
    },
    #[error("the server is shutting down; try again shortly")]
    ShuttingDown,
    #[error("the job could not be stored: {0}")]
    Store(String),
}

/// Why no signed URL could be had for a stored video.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("this job has no stored object")]
    NoObject,
    #[error("object storage is not available: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Storage(UploadError),
}

#[derive(RactorMessage)]
pub enum JobManagerMsg {
    /// Admit a job; the reply (once the job is durable) carries its view (status `queued`).
    Submit {
        request: SubmitRequest,
        reply: RpcReplyPort<Result<JobView, SubmitError>>,
    },
    /// Reply once the job is completed or failed (at once if it already is).
    WaitFinished {
        job_id: JobId,
        reply: RpcReplyPort<JobView>,
    },
    /// From a RenderActor.
    Progress {
        job_id: JobId,
        attempt: u32,
        progress: RenderProgress,
    },
    /// From a RenderActor: its render returned.
    RenderDone {
        job_id: JobId,
        attempt: u32,
        result: Result<RenderOutput, RenderFailure>,
    },
    /// A restart's backoff elapsed: run the job again.
    Restart { job_id: JobId },
    /// Periodic: liveness of renders, retention sweep, drain deadline.
    Tick,
    /// Stop starting jobs and refuse new ones; reply when no render runs, or at `grace`'s end after
    /// stopping the renders that remain (their jobs stay `processing` in the store and resume on
    /// the next start).
    Drain {
        grace: Duration,
        reply: RpcReplyPort<DrainReport>,
    },
    /// Counts for health checks.
    Stats(RpcReplyPort<ManagerStats>),
    /// From the UploadActor: bytes uploaded so far of a job's files.
    UploadProgress {
        job_id: JobId,
        attempt: u32,
        done: u64,
        total: u64,
    },
    /// From the UploadActor: the job's files are stored (with signed URLs), or not.
    UploadDone {
        job_id: JobId,
        attempt: u32,
        result: Result<Vec<S3Object>, UploadError>,
    },
    /// A request for the WebhookActor (delivery log, redelivery): the HTTP layer speaks only to
    /// the JobManager, which forwards it.
    ToWebhooks(WebhookMsg),
    /// A fresh signed URL for a completed job's stored video (`reel` for the vertical one).
    PresignDownload {
        job_id: JobId,
        reel: bool,
        reply: RpcReplyPort<Result<String, PresignError>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagerStats {
    /// Jobs known (any status).
    pub total: usize,
    pub queued: usize,
    pub running: usize,
    pub max_concurrent: usize,
    pub max_queued: usize,
    pub draining: bool,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Renders that finished during the grace period.
    pub finished: usize,
    /// Renders stopped at the deadline, left to resume on the next start.
    pub interrupted: usize,
}

#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub max_concurrent: usize,
    pub max_queued: usize,
    /// Where renders put their files.
    pub out_dir: PathBuf,
    /// Prefix of download URLs, e.g. `/api/download/`.
    pub download_prefix: String,
    /// Restarts of one job's render allowed within `restart_window` before the job fails.
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// Backoff before the first restart; doubles each time.
    pub restart_backoff: Duration,
    /// A render silent for this long is killed.
    pub stall_timeout: Duration,
    /// Finished jobs are removed this long after they finish (None: kept forever).
    pub retention: Option<Duration>,
    /// How often the liveness check and the retention sweep run.
    pub tick: Duration,
    /// Prepended to object keys (`prefix/videos/YYYY-MM-DD/standard/<jobId>.mp4`).
    pub s3_prefix: String,
    /// Remove the local files once they are in object storage.
    pub delete_local_after_upload: bool,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            max_concurrent: 1,
            max_queued: 1000,
            out_dir: PathBuf::from("videos"),
            download_prefix: "/api/download/".into(),
            max_restarts: 2,
            restart_window: Duration::from_secs(600),
            restart_backoff: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(120),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            tick: Duration::from_secs(1),
            s3_prefix: String::new(),
            delete_local_after_upload: false,
        }
    }
}

pub struct JobManagerArgs {
    pub renderer: Arc<dyn Renderer>,
    pub webhooks: ActorRef<WebhookMsg>,
    pub views: JobViews,
    pub store: Arc<dyn JobStore>,
    pub settings: ManagerSettings,
    /// Object storage; `None` keeps videos on local disk only.
    pub uploader: Option<(Arc<dyn Uploader>, UploadSettings)>,
}

struct Job {
    record: JobRecord,
    started: Option<Instant>,
    last_progress: Instant,
    actor: Option<ActorCell>,
    /// Why the running actor was killed, when we killed it.
    killed_for: Option<RenderFailure>,
    restarts: Vec<Instant>,
    restart_timer: Option<AbortHandle>,
    waiters: Vec<RpcReplyPort<JobView>>,
    view: JobView,
    /// A finished render waiting for (or in) its upload.
    rendered: Option<RenderOutput>,
    /// Where its files went in object storage.
    stored: Option<Vec<S3Object>>,
}

struct Draining {
    deadline: Instant,
    reply: Option<RpcReplyPort<DrainReport>>,
    running_at_start: usize,
}

pub struct JobManagerState {
    renderer: Arc<dyn Renderer>,
    webhooks: ActorRef<WebhookMsg>,
    views: JobViews,
    store: Arc<dyn JobStore>,
    settings: ManagerSettings,
    jobs: HashMap<JobId, Job>,
    queue: VecDeque<JobId>,
    running: HashMap<ActorId, JobId>,
    draining: Option<Draining>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    last_sweep: Instant,
    uploader: Option<(Arc<dyn Uploader>, UploadSettings)>,
    upload: Option<ActorRef<UploadMsg>>,
}

pub struct JobManager;

fn view_of(r: &JobRecord) -> JobView {
    let message = match r.status {
        JobStatus::Queued => "Waiting in queue",
        JobStatus::Processing => "Resuming after a restart",
        JobStatus::Completed => "Video generated successfully",
        JobStatus::Failed => "Video generation failed",
    };
    let result = r.result.clone();
    JobView {
        job_id: r.id.clone(),
        status: r.status,
        progress: if r.status == JobStatus::Completed {
            100
        } else {
            0
        },
        message: message.into(),
        created_at: r.created_at.clone(),
        started_at: r.started_at.clone(),
        finished_at: r.finished_at.clone(),
        queue_position: None,
        attempt: (r.attempt > 0).then_some(r.attempt),
        result,
        error: r.error.clone(),
        owner: r.owner.clone(),
        expired: r.expired,
        files: JobFiles {
            video: r.video.clone(),
            reel: r.reel.clone(),
        },
    }
}

impl JobManagerState {
    fn new_job(record: JobRecord) -> Job {
        Job {
            view: view_of(&record),
            record,
            started: None,
            last_progress: Instant::now(),
            actor: None,
            killed_for: None,
            restarts: Vec::new(),
            restart_timer: None,
            waiters: Vec::new(),
            rendered: None,
            stored: None,
        }
    }

    fn publish(&self, id: &JobId) {
        if let Some(job) = self.jobs.get(id) {
            self.views.insert(id.clone(), job.view.clone());
        }
    }

    fn publish_queue_positions(&mut self) {
        for (i, id) in self.queue.iter().enumerate() {
            if let Some(job) = self.jobs.get_mut(id) {
                job.view.queue_position = Some(i + 1);
                job.view.message = format!("Waiting in queue (position {})", i + 1);
                self.views.insert(id.clone(), job.view.clone());
            }
        }
    }

    /// Saves the job and, atomically with it, the webhook `event`'s outbox row; then hands the
    /// delivery to the WebhookActor. A store failure is logged: the in-memory state goes on, and
    /// the job may rerun after a restart, which is better than losing it.
    fn persist(&self, id: &JobId, event: Option<WebhookEvent>) {
        let Some(job) = self.jobs.get(id) else { return };
        let delivery = event.and_then(|ev| {
            job.record
                .webhook_url
                .as_ref()
                .map(|url| Delivery::new(url, &ev, job.record.owner.clone()))
        });
        if let Err(e) = self
            .store
            .update_job(&job.record, delivery.as_ref().map(|d| d.to_row()).as_ref())
        {
            error!(job_id = %id, "could not save the job: {e}");
        }
        if let Some(d) = delivery {
            if let Err(e) = self.webhooks.cast(WebhookMsg::Enqueue(d)) {
                error!(job_id = %id, "webhook actor unavailable (the outbox keeps the delivery): {e}");
            }
        }
    }

    /// Start queued jobs while there are free slots.
    async fn pump(&mut self, myself: &ActorRef<JobManagerMsg>) {
        if self.draining.is_some() {
            return;
        }
        let mut changed = false;
        while self.running.len() < self.settings.max_concurrent {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            changed = true;
            self.start(myself, id).await;
        }
        if changed {
            self.publish_queue_positions();
        }
    }

    async fn start(&mut self, myself: &ActorRef<JobManagerMsg>, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.view.status.is_terminal() {
            return;
        }
        job.record.attempt += 1;
        let attempt = job.record.attempt;
        let now = Utc::now();
        let first = job.record.started_at.is_none();
        job.record.status = JobStatus::Processing;
        job.record.started_at.get_or_insert_with(|| timestamp(now));
        job.started = Some(Instant::now());
        job.last_progress = Instant::now();
        job.killed_for = None;
        job.view.status = JobStatus::Processing;
        job.view.queue_position = None;
        job.view.progress = 0;
        job.view.message = if attempt == 1 {
            "Starting render".into()
        } else {
            format!("Starting render (attempt {attempt})")
        };
        job.view.attempt = Some(attempt);
        job.view.started_at = job.record.started_at.clone();
        let request = RenderRequest {
            job_id: id.clone(),
            attempt,
            spec: job.record.spec.clone(),
            out_dir: self.settings.out_dir.clone(),
        };
        // The `started` event goes out once per job, with the move to processing.
        self.persist(&id, first.then(|| WebhookEvent::started(&id, now)));
        // Rendered before a restart but not stored yet: upload instead of rendering again.
        if self.upload.is_some() {
            let job = &self.jobs[&id];
            if let Some(video) = job.record.video.clone().filter(|v| v.exists()) {
                let reel = job.record.reel.clone().filter(|r| r.exists());
                let spec = &job.record.spec;
                let (width, height) = spec.quality.dimensions();
                let out = RenderOutput {
                    video,
                    reel,
                    duration_secs: spec.frame_count() as f64 / spec.fps as f64,
                    width,
                    height,
                    frames: spec.frame_count(),
                    poster: None,
                    reel_poster: None,
                };
                info!(job_id = %id, "the video was rendered before the restart: uploading it");
                self.begin_upload(myself, &id, out);
                return;
            }
        }
        let args = RenderArgs {
            request,
            // A few reports a second, and always several within the stall timeout.
            progress_interval: (self.settings.stall_timeout / 4).min(Duration::from_millis(250)),
            renderer: self.renderer.clone(),
            manager: myself.clone(),
        };
        match Actor::spawn_linked(None, RenderActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                info!(job_id = %id, attempt, "render started");
                self.running.insert(actor.get_id(), id.clone());
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.actor = Some(actor.get_cell());
                }
                self.publish(&id);
            }
            Err(e) => self.finish(&id, Err(JobFailure::NotStarted(e.to_string()))),
        }
    }

    /// A render attempt ended without a result: retry within the restart intensity, else fail.
    fn attempt_failed(
        &mut self,
        myself: &ActorRef<JobManagerMsg>,
        id: &JobId,
        reason: RenderFailure,
    ) {
        let settings = self.settings.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if let Some(actor) = job.actor.take() {
            self.running.remove(&actor.get_id());
        }
        let now = Instant::now();
        job.restarts
            .retain(|t| now.duration_since(*t) < settings.restart_window);
        if job.restarts.len() as u32 >= settings.max_restarts {
            warn!(job_id = %id, attempt = job.record.attempt, "giving up after {} restarts: {reason}", job.restarts.len());
            self.finish(id, Err(JobFailure::Render(reason)));
            return;
        }
        job.restarts.push(now);
        let n = job.restarts.len() as u32;
        let backoff = settings.restart_backoff * 2u32.saturating_pow(n - 1);
        warn!(job_id = %id, attempt = job.record.attempt, backoff_ms = backoff.as_millis() as u64, "render attempt failed, restarting: {reason}");
        job.view.message = format!(
            "Render failed, retrying in {}s: {}",
            backoff.as_secs_f32().ceil(),
            JobFailure::Render(reason)
        );
        let job_id = id.clone();
        job.restart_timer = Some(
            myself
                .send_after(backoff, move || JobManagerMsg::Restart { job_id })
                .abort_handle(),
        );
        self.publish(id);
    }

    /// The job, if it is still unfinished and on `attempt` (messages of older attempts are stale).
    fn live_job(&mut self, id: &JobId, attempt: u32) -> Option<&mut Job> {
        self.jobs
            .get_mut(id)
            .filter(|j| j.record.attempt == attempt && !j.view.status.is_terminal())
    }

    /// A render is done and object storage is configured: store the files, then finish.
    fn begin_upload(&mut self, myself: &ActorRef<JobManagerMsg>, id: &JobId, out: RenderOutput) {
        let prefix = match self.settings.s3_prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        // The key's date is the job's creation day (UTC), as the contract's example shows.
        let day = job
            .record
            .created_at
            .get(..10)
            .unwrap_or("unknown")
            .to_string();
        let mut files = vec![UploadFile {
            path: out.video.clone(),
            key: format!("{prefix}videos/{day}/standard/{id}.mp4"),
            content_type: "video/mp4".into(),
        }];
        if let Some(reel) = &out.reel {
            files.push(UploadFile {
                path: reel.clone(),
                key: format!("{prefix}videos/{day}/reels/{id}.mp4"),
                content_type: "video/mp4".into(),
            });
        }
        // Remember the render in the store: a restart uploads it instead of rendering again.
        job.record.video = Some(out.video.clone());
        job.record.reel = out.reel.clone();
        job.rendered = Some(out);
        job.view.progress = job.view.progress.max(97);
        job.view.message = "Uploading to S3 (0%)".into();
        let attempt = job.record.attempt;
        self.persist(id, None);
        self.publish(id);
        let Some(upload) = &self.upload else { return };
        let msg = UploadMsg::Upload {
            job_id: id.clone(),
            attempt,
            files,
            manager: myself.clone(),
        };
        if let Err(e) = upload.cast(msg) {
            self.finish(
                id,
                Err(JobFailure::Upload(format!(
                    "the upload worker is unavailable ({e})"
                ))),
            );
        }
    }

    /// (Re)starts the UploadActor, linked to the manager.
    async fn spawn_upload_actor(&mut self, myself: &ActorRef<JobManagerMsg>) {
        let Some((uploader, settings)) = self.uploader.clone() else {
            return;
        };
        match Actor::spawn_linked(
            None,
            UploadActor,
            UploadArgs { uploader, settings },
            myself.get_cell(),
        )
        .await
        {
            Ok((actor, _)) => self.upload = Some(actor),
            Err(e) => {
                error!("could not start the upload worker: {e}");
                self.upload = None;
            }
        }
    }

    /// Move a job to its terminal state, persist it with its terminal webhook, wake its waiters.
    fn finish(&mut self, id: &JobId, result: Result<RenderOutput, JobFailure>) {
        let prefix = self.settings.download_prefix.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.view.status.is_terminal() {
            return;
        }
        if let Some(actor) = job.actor.take() {
            self.running.remove(&actor.get_id());
        }
        let now = Utc::now();
        let elapsed = job
            .started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        job.record.finished_at = Some(timestamp(now));
        job.record.finished_ms = Some(now.timestamp_millis());
        job.view.finished_at = job.record.finished_at.clone();
        job.view.queue_position = None;
        let stored = job.stored.take();
        let delete_local = self.settings.delete_local_after_upload && stored.is_some();
        let event = match result {
            Ok(out) => {
                let s3_upload = match &stored {
                    None => S3Upload {
                        enabled: false,
                        standard: None,
                        reels: None,
                    },
                    Some(objects) => S3Upload {
                        enabled: true,
                        standard: objects.first().cloned(),
                        reels: objects.get(1).cloned(),
                    },
                };
                if delete_local {
                    // Posters go with their videos: they are served only beside a local copy.
                    let posters = out.poster.iter().chain(out.reel_poster.as_ref());
                    for f in std::iter::once(&out.video)
                        .chain(out.reel.as_ref())
                        .chain(posters)
                    {
                        if let Err(e) = std::fs::remove_file(f) {
                            warn!(job_id = %id, file = %f.display(), "could not delete the local copy: {e}");
                        }
                    }
                }
                let files = if delete_local {
                    JobFiles::default()
                } else {
                    JobFiles {
                        video: Some(out.video.clone()),
                        reel: out.reel.clone(),
                    }
                };
                let result = JobResult {
                    video_url: format!("{prefix}{id}"),
                    reels_url: out.reel.as_ref().map(|_| format!("{prefix}{id}/reel")),
                    duration: out.duration_secs,
                    scenes: job.record.spec.scenes.len(),
                    reels_generated: out.reel.is_some(),
                    s3_upload,
                    render_time: format!("{}s", elapsed.round() as u64),
                    poster_url: out
                        .poster
                        .as_ref()
                        .filter(|_| !delete_local)
                        .map(|_| format!("{prefix}{id}/poster")),
                };
                info!(job_id = %id, render_secs = elapsed, "job completed");
                job.record.status = JobStatus::Completed;
                job.record.result = Some(result.clone());
                job.record.video = files.video.clone();
                job.record.reel = files.reel.clone();
                job.view.files = files;
                job.view.status = JobStatus::Completed;
                job.view.progress = 100;
                job.view.message = "Video generated successfully".into();
                job.view.result = Some(result.clone());
                WebhookEvent::completed(id, result, now)
            }
            Err(failure) => {
                let e = failure.to_string();
                warn!(job_id = %id, error = %e, "job failed");
                job.record.status = JobStatus::Failed;
                job.record.error = Some(e.clone());
                // A render that finished but could not be stored stays downloadable from here.
                if let Some(out) = job.rendered.take() {
                    job.view.files = JobFiles {
                        video: Some(out.video.clone()),
                        reel: out.reel.clone(),
                    };
                    job.record.video = Some(out.video);
                    job.record.reel = out.reel;
                }
                job.view.status = JobStatus::Failed;
                job.view.message = "Video generation failed".into();
                job.view.error = Some(e.clone());
                WebhookEvent::failed(id, &e, now)
            }
        };
        for w in job.waiters.drain(..) {
            let _ = w.send(job.view.clone());
        }
        self.persist(id, Some(event));
        self.publish(id);
    }

    fn progress(&mut self, id: &JobId, attempt: u32, p: RenderProgress) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.record.attempt != attempt
            || job.view.status != JobStatus::Processing
            || job.actor.is_none()
        {
            return;
        }
        job.last_progress = Instant::now();
        let (pct, message) = match p.phase {
            RenderPhase::Rendering => {
                let pct = (p.frames_done * 90)
                    .checked_div(p.frames_total)
                    .unwrap_or(0)
                    .min(90) as u8;
                (
                    pct,
                    format!("Rendering frames: {}/{}", p.frames_done, p.frames_total),
                )
            }
            RenderPhase::Encoding => (92, "Encoding".to_string()),
            RenderPhase::Finalising => (97, "Finalising".to_string()),
        };
        job.view.progress = job.view.progress.max(pct);
        job.view.message = message;
        self.publish(id);
    }

    /// Kills renders that have been silent past the stall timeout.
    fn check_liveness(&mut self) {
        let limit = self.settings.stall_timeout;
        for job in self.jobs.values_mut() {
            if let Some(actor) = &job.actor {
                if job.killed_for.is_none() && job.last_progress.elapsed() > limit {
                    let why = RenderFailure::new(
                        RenderFailureKind::Stalled,
                        format!("render stalled (no progress for {}s)", limit.as_secs()),
                    );
                    warn!(job_id = %job.record.id, "{why}; killing it");
                    job.killed_for = Some(why);
                    actor.kill();
                }
            }
        }
    }

    /// Removes finished jobs past retention: files, rows (a tombstone stays for 410).
    fn sweep(&mut self) {
        let Some(retention) = self.settings.retention else {
            return;
        };
        let before = now_ms() - retention.as_millis() as i64;
        let expired = match self.store.finished_before(before) {
            Ok(list) => list,
            Err(e) => return error!("retention sweep: {e}"),
        };
        for record in expired {
            let videos = [&record.video, &record.reel].into_iter().flatten();
            for f in videos.flat_map(|v| [v.clone(), vidbuilder_domain::job::poster_of(v)]) {
                if let Err(e) = std::fs::remove_file(&f) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        warn!(job_id = %record.id, file = %f.display(), "retention: could not remove: {e}");
                    }
                }
            }
            if let Err(e) = self.store.expire(&record.id) {
                error!(job_id = %record.id, "retention: {e}");
                continue;
            }
            info!(job_id = %record.id, "retention: job expired");
            if let Some(job) = self.jobs.get_mut(&record.id) {
                job.record.expired = true;
                job.record.result = None;
                job.view = view_of(&job.record);
                job.view.result = None;
            }
            self.publish(&record.id);
        }
    }

    fn check_drain(&mut self) {
        let running = self.running.len();
        let Some(d) = self.draining.as_mut() else {
            return;
        };
        if d.reply.is_none() {
            return;
        }
        if running == 0 {
            let report = DrainReport {
                finished: d.running_at_start,
                interrupted: 0,
            };
            let _ = d.reply.take().map(|r| r.send(report));
        } else if Instant::now() >= d.deadline {
            let report = DrainReport {
                finished: d.running_at_start.saturating_sub(running),
                interrupted: running,
            };
            for job in self.jobs.values_mut() {
                if let Some(actor) = job.actor.take() {
                    warn!(job_id = %job.record.id, "grace period over: stopping the render; it resumes on the next start");
                    job.killed_for = Some(RenderFailure::new(
                        RenderFailureKind::Cancelled,
                        "stopped for shutdown",
                    ));
                    actor.kill();
                }
            }
            self.running.clear();
            let _ = d.reply.take().map(|r| r.send(report));
        }
        if self.draining.as_ref().is_some_and(|d| d.reply.is_none()) {
            // Nothing more finishes in this process: release blocking callers of unfinished jobs.
            for job in self.jobs.values_mut() {
                job.waiters.clear();
            }
        }
    }
}

impl Actor for JobManager {
    type Msg = JobManagerMsg;
    type State = JobManagerState;
    type Arguments = JobManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<JobManagerMsg>,
        args: JobManagerArgs,
    ) -> Result<JobManagerState, ActorProcessingErr> {
        let mut state = JobManagerState {
            renderer: args.renderer,
            webhooks: args.webhooks,
            views: args.views,
            store: args.store,
            settings: ManagerSettings {
                max_concurrent: args.settings.max_concurrent.max(1),
                ..args.settings
            },
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            running: HashMap::new(),
            draining: None,
            ticker: None,
            last_sweep: Instant::now(),
            uploader: args.uploader,
            upload: None,
        };
        // Recover: finished jobs are served again; queued and interrupted ones run again, in
        // admission order. Partial files of interrupted renders are discarded by the renderer
        // (temporary names) and by `discard_partials` below.
        let records = state.store.load_jobs()?;
        let (mut resumed, mut requeued) = (0, 0);
        for record in records {
            let id = record.id.clone();
            match record.status {
                JobStatus::Processing => {
                    resumed += 1;
                    state.queue.push_back(id.clone());
                }
                JobStatus::Queued => {
                    requeued += 1;
                    state.queue.push_back(id.clone());
                }
                _ => {}
            }
            let mut job = JobManagerState::new_job(record);
            if job.record.status == JobStatus::Processing {
                // Interrupted: it waits for a slot again (the store says `processing` until then).
                job.view.status = JobStatus::Queued;
            }
            state.views.insert(id.clone(), job.view.clone());
            state.jobs.insert(id, job);
        }
        if resumed + requeued > 0 {
            info!(
                resumed,
                requeued, "recovered unfinished jobs from the store"
            );
        }
        discard_partials(&state.settings.out_dir);
        state.publish_queue_positions();
        state.ticker = Some(myself.send_interval(state.settings.tick, || JobManagerMsg::Tick));
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<JobManagerMsg>,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        state.spawn_upload_actor(&myself).await;
        state.pump(&myself).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<JobManagerMsg>,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        for job in state.jobs.values_mut() {
            if let Some(t) = job.restart_timer.take() {
                t.abort();
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<JobManagerMsg>,
        msg: JobManagerMsg,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            JobManagerMsg::Submit { request, reply } => {
                if state.draining.is_some() {
                    let _ = reply.send(Err(SubmitError::ShuttingDown));
                    return Ok(());
                }
                if state.queue.len() >= state.settings.max_queued {
                    let retry =
                        5 + 5 * (state.queue.len() / state.settings.max_concurrent.max(1)) as u64;
                    let _ = reply.send(Err(SubmitError::QueueFull {
                        queued: state.queue.len(),
                        retry_after_secs: retry.min(300),
                    }));
                    return Ok(());
                }
                let mut record = JobRecord {
                    id: JobId::new(),
                    seq: 0,
                    spec: request.spec,
                    webhook_url: request.webhook_url,
                    owner: request.owner,
                    status: JobStatus::Queued,
                    attempt: 0,
                    created_at: timestamp(Utc::now()),
                    started_at: None,
                    finished_at: None,
                    result: None,
                    video: None,
                    reel: None,
                    error: None,
                    finished_ms: None,
                    expired: false,
                };
                if let Err(e) = state.store.insert_job(&mut record) {
                    error!("could not store a new job: {e}");
                    let _ = reply.send(Err(SubmitError::Store(e.to_string())));
                    return Ok(());
                }
                let id = record.id.clone();
                info!(job_id = %id, scenes = record.spec.scenes.len(), quality = record.spec.quality.as_str(), "job queued");
                state
                    .jobs
                    .insert(id.clone(), JobManagerState::new_job(record));
                state.queue.push_back(id.clone());
                state.publish_queue_positions();
                let _ = reply.send(Ok(state.jobs[&id].view.clone()));
                state.pump(&myself).await;
            }
            JobManagerMsg::WaitFinished { job_id, reply } => match state.jobs.get_mut(&job_id) {
                Some(job) if job.view.status.is_terminal() => {
                    let _ = reply.send(job.view.clone());
                }
                Some(job) => job.waiters.push(reply),
                None => drop(reply),
            },
            JobManagerMsg::Progress {
                job_id,
                attempt,
                progress,
            } => state.progress(&job_id, attempt, progress),
            JobManagerMsg::RenderDone {
                job_id,
                attempt,
                result,
            } => {
                let Some(job) = state.jobs.get_mut(&job_id) else {
                    return Ok(());
                };
                if job.record.attempt != attempt || job.actor.is_none() {
                    return Ok(());
                }
                if let Some(actor) = job.actor.take() {
                    state.running.remove(&actor.get_id());
                    actor.stop(Some("render finished".into()));
                }
                match result {
                    Ok(out) if state.upload.is_some() => state.begin_upload(&myself, &job_id, out),
                    Ok(out) => state.finish(&job_id, Ok(out)),
                    Err(e) => state.attempt_failed(&myself, &job_id, e),
                }
                state.check_drain();
                state.pump(&myself).await;
            }
            JobManagerMsg::Restart { job_id } => {
                let Some(job) = state.jobs.get_mut(&job_id) else {
                    return Ok(());
                };
                job.restart_timer = None;
                if job.view.status.is_terminal() || job.actor.is_some() {
                    return Ok(());
                }
                if state.draining.is_some() {
                    return Ok(()); // stays `processing` in the store: resumes on the next start
                }
                // Restarts jump the queue: the job was admitted before everything waiting.
                state.queue.push_front(job_id);
                state.pump(&myself).await;
            }
            JobManagerMsg::Tick => {
                state.check_liveness();
                state.check_drain();
                if state.last_sweep.elapsed()
                    >= Duration::from_secs(60)
                        .min(state.settings.retention.unwrap_or(Duration::MAX) / 4)
                {
                    state.last_sweep = Instant::now();
                    state.sweep();
                }
            }
            JobManagerMsg::Drain { grace, reply } => {
                info!(
                    running = state.running.len(),
                    queued = state.queue.len(),
                    grace_secs = grace.as_secs(),
                    "draining"
                );
                state.draining = Some(Draining {
                    deadline: Instant::now() + grace,
                    reply: Some(reply),
                    running_at_start: state.running.len(),
                });
                state.check_drain();
            }
            JobManagerMsg::UploadProgress {
                job_id,
                attempt,
                done,
                total,
            } => {
                let Some(job) = state.live_job(&job_id, attempt) else {
                    return Ok(());
                };
                let pct = (done * 100).checked_div(total).unwrap_or(100).min(100);
                job.view.message = format!("Uploading to S3 ({pct}%)");
                job.view.progress = job.view.progress.max(97 + (pct * 2 / 100) as u8);
                state.publish(&job_id);
            }
            JobManagerMsg::UploadDone {
                job_id,
                attempt,
                result,
            } => {
                let Some(job) = state.live_job(&job_id, attempt) else {
                    return Ok(());
                };
                match (result, job.rendered.clone()) {
                    (Ok(objects), Some(out)) => {
                        job.stored = Some(objects);
                        state.finish(&job_id, Ok(out));
                    }
                    (Err(e), _) => state.finish(&job_id, Err(JobFailure::Upload(e.message))),
                    (Ok(_), None) => state.finish(
                        &job_id,
                        Err(JobFailure::Upload("the rendered files were lost".into())),
                    ),
                }
            }
            JobManagerMsg::PresignDownload {
                job_id,
                reel,
                reply,
            } => {
                let key = state
                    .jobs
                    .get(&job_id)
                    .and_then(|j| j.view.result.as_ref())
                    .and_then(|r| {
                        let obj = if reel {
                            r.s3_upload.reels.as_ref()
                        } else {
                            r.s3_upload.standard.as_ref()
                        };
                        obj.map(|o| o.s3_key.clone())
                    });
                match (key, state.upload.clone()) {
                    (Some(key), Some(upload)) => {
                        tokio::spawn(async move {
                            let url =
                                ractor::call!(upload, |r| UploadMsg::Presign { key, reply: r });
                            let _ = reply.send(match url {
                                Ok(Ok(url)) => Ok(url),
                                Ok(Err(e)) => Err(PresignError::Storage(e)),
                                Err(e) => Err(PresignError::Unavailable(e.to_string())),
                            });
                        });
                    }
                    (None, _) => {
                        let _ = reply.send(Err(PresignError::NoObject));
                    }
                    (_, None) => {
                        let _ = reply.send(Err(PresignError::Unavailable(
                            "object storage is not configured".into(),
                        )));
                    }
                }
            }
            JobManagerMsg::ToWebhooks(msg) => {
                if let Err(e) = state.webhooks.cast(msg) {
                    error!("webhook actor unavailable: {e}");
                }
            }
            JobManagerMsg::Stats(reply) => {
                let _ = reply.send(ManagerStats {
                    total: state.jobs.len(),
                    queued: state.queue.len(),
                    running: state.running.len(),
                    max_concurrent: state.settings.max_concurrent,
                    max_queued: state.settings.max_queued,
                    draining: state.draining.is_some(),
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<JobManagerMsg>,
        evt: SupervisionEvent,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        // Never stop the manager because a child ended: decide per job instead.
        let (cell, reason): (ActorCell, RenderFailure) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (
                cell,
                RenderFailure::new(
                    RenderFailureKind::Crashed,
                    format!("render worker crashed: {err}"),
                ),
            ),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                RenderFailure::new(
                    RenderFailureKind::Crashed,
                    format!(
                        "render worker stopped ({})",
                        reason.unwrap_or_else(|| "no reason given".into())
                    ),
                ),
            ),
            _ => return Ok(()),
        };
        if state
            .upload
            .as_ref()
            .is_some_and(|u| u.get_id() == cell.get_id())
        {
            error!("the upload worker stopped ({reason}); restarting it");
            state.spawn_upload_actor(&myself).await;
            return Ok(());
        }
        let Some(job_id) = state.running.remove(&cell.get_id()) else {
            return Ok(());
        };
        let killed_for = state
            .jobs
            .get_mut(&job_id)
            .and_then(|j| j.killed_for.take());
        if state.draining.is_some() {
            // Stopped for shutdown: the job stays `processing` in the store and resumes next start.
            if let Some(job) = state.jobs.get_mut(&job_id) {
                job.actor = None;
            }
            state.check_drain();
            return Ok(());
        }
        let reason = killed_for.unwrap_or(reason);
        error!(job_id = %job_id, "{reason}");
        state.attempt_failed(&myself, &job_id, reason);
        state.pump(&myself).await;
        Ok(())
    }
}

/// Removes partial files (`.<name>.partial.mp4`) left by renders a crash interrupted.
fn discard_partials(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && name.ends_with(".partial.mp4") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
