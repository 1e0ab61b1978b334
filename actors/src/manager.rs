//! The JobManager: owner of every job's state machine, the FIFO admission queue and the
//! concurrency limit.
//!
//! ```text
//! Submit ─► queued ──(slot free)──► processing ──RenderDone(Ok)──► completed
//!                                       │ ├──────RenderDone(Err)──► failed
//!                                       │ └──RenderActor panicked/errored (supervision)──► failed
//!                                       └── Progress: "Rendering frames: N/M", "Encoding", …
//! ```
//! Every change is written to the [`JobViews`] map that the HTTP layer reads; webhook events are
//! handed to the WebhookActor at the two moments the contract names (processing starts, job ends).
//! The manager overrides `handle_supervisor_evt`, so a child's exit never stops it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use dashmap::DashMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use ractor_cluster::RactorMessage;
use tracing::{error, info, info_span, warn};

use crate::events::WebhookEvent;
use crate::job::{timestamp, JobFiles, JobId, JobResult, JobStatus, JobView, S3Upload};
use crate::ports::{RenderOutput, RenderPhase, RenderProgress, RenderRequest, Renderer};
use crate::render::{RenderActor, RenderArgs};
use crate::spec::VideoSpec;
use crate::webhook::{Delivery, WebhookMsg};

/// The read view the JobManager writes and the HTTP layer reads.
pub type JobViews = Arc<DashMap<JobId, JobView>>;

/// A job to admit.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub spec: VideoSpec,
    pub webhook_url: Option<String>,
}

/// Why a job was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({queued} jobs waiting); try again later")]
    QueueFull {
        queued: usize,
        retry_after_secs: u64,
    },
}

#[derive(RactorMessage)]
pub enum JobManagerMsg {
    /// Admit a job; the reply carries its view (status `queued`).
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
        result: Result<RenderOutput, String>,
    },
    /// Counts for health checks: (queued, running).
    Stats(RpcReplyPort<ManagerStats>),
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
}

#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub max_concurrent: usize,
    pub max_queued: usize,
    /// Where renders put their files.
    pub out_dir: PathBuf,
    /// Prefix of download URLs, e.g. `/api/download/`.
    pub download_prefix: String,
}

pub struct JobManagerArgs {
    pub renderer: Arc<dyn Renderer>,
    pub webhooks: ActorRef<WebhookMsg>,
    pub views: JobViews,
    pub settings: ManagerSettings,
}

struct Job {
    spec: Option<VideoSpec>,
    webhook_url: Option<String>,
    attempt: u32,
    started: Option<Instant>,
    actor: Option<ActorId>,
    waiters: Vec<RpcReplyPort<JobView>>,
    view: JobView,
}

pub struct JobManagerState {
    renderer: Arc<dyn Renderer>,
    webhooks: ActorRef<WebhookMsg>,
    views: JobViews,
    settings: ManagerSettings,
    jobs: HashMap<JobId, Job>,
    queue: VecDeque<JobId>,
    running: HashMap<ActorId, JobId>,
}

pub struct JobManager;

impl JobManagerState {
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

    fn send_webhook(&self, job: &Job, event: WebhookEvent) {
        if let Some(url) = &job.webhook_url {
            if let Err(e) = self
                .webhooks
                .cast(WebhookMsg::Enqueue(Delivery::new(url, &event)))
            {
                error!(job_id = %event.job_id, "webhook actor unavailable: {e}");
            }
        }
    }

    /// Start queued jobs while there are free slots.
    async fn pump(&mut self, myself: &ActorRef<JobManagerMsg>) {
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
        let Some(spec) = job.spec.clone() else { return };
        job.attempt += 1;
        let now = Utc::now();
        let first = job.attempt == 1;
        job.started = Some(Instant::now());
        job.view.status = JobStatus::Processing;
        job.view.queue_position = None;
        job.view.progress = 0;
        job.view.message = "Starting render".into();
        job.view.attempt = Some(job.attempt);
        job.view.started_at.get_or_insert_with(|| timestamp(now));
        let request = RenderRequest {
            job_id: id.clone(),
            attempt: job.attempt,
            spec,
            out_dir: self.settings.out_dir.clone(),
        };
        let args = RenderArgs {
            request,
            renderer: self.renderer.clone(),
            manager: myself.clone(),
        };
        let attempt = job.attempt;
        match Actor::spawn_linked(None, RenderActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                info!(job_id = %id, attempt, "render started");
                job.actor = Some(actor.get_id());
                self.running.insert(actor.get_id(), id.clone());
                if first {
                    let event = WebhookEvent::started(&id, now);
                    let job = &self.jobs[&id];
                    self.send_webhook(job, event);
                }
                self.publish(&id);
            }
            Err(e) => {
                self.finish(&id, Err(format!("Failed to start render worker: {e}")));
            }
        }
    }

    /// Move a job to its terminal state, send its terminal webhook, wake its waiters.
    fn finish(&mut self, id: &JobId, result: Result<RenderOutput, String>) {
        let prefix = self.settings.download_prefix.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.view.status.is_terminal() {
            return;
        }
        let _span = info_span!("job", job_id = %id, attempt = job.attempt).entered();
        if let Some(actor) = job.actor.take() {
            self.running.remove(&actor);
        }
        let now = Utc::now();
        let elapsed = job
            .started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let scenes = job.spec.as_ref().map(|s| s.scenes.len()).unwrap_or(0);
        job.view.finished_at = Some(timestamp(now));
        job.view.queue_position = None;
        let event = match result {
            Ok(out) => {
                let result = JobResult {
                    video_url: format!("{prefix}{id}"),
                    reels_url: out.reel.as_ref().map(|_| format!("{prefix}{id}/reel")),
                    duration: out.duration_secs,
                    scenes,
                    reels_generated: out.reel.is_some(),
                    s3_upload: S3Upload {
                        enabled: false,
                        standard: None,
                        reels: None,
                    },
                    render_time: format!("{}s", elapsed.round() as u64),
                    files: JobFiles {
                        video: Some(out.video),
                        reel: out.reel,
                    },
                };
                info!(render_secs = elapsed, "job completed");
                job.view.status = JobStatus::Completed;
                job.view.progress = 100;
                job.view.message = "Video generated successfully".into();
                job.view.result = Some(result.clone());
                WebhookEvent::completed(id, result, now)
            }
            Err(e) => {
                warn!(error = %e, "job failed");
                job.view.status = JobStatus::Failed;
                job.view.message = "Video generation failed".into();
                job.view.error = Some(e.clone());
                WebhookEvent::failed(id, &e, now)
            }
        };
        job.spec = None;
        for w in job.waiters.drain(..) {
            let _ = w.send(job.view.clone());
        }
        let job = &self.jobs[id];
        self.send_webhook(job, event);
        self.publish(id);
    }

    fn progress(&mut self, id: &JobId, attempt: u32, p: RenderProgress) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.attempt != attempt || job.view.status != JobStatus::Processing {
            return;
        }
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
}

impl Actor for JobManager {
    type Msg = JobManagerMsg;
    type State = JobManagerState;
    type Arguments = JobManagerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<JobManagerMsg>,
        args: JobManagerArgs,
    ) -> Result<JobManagerState, ActorProcessingErr> {
        Ok(JobManagerState {
            renderer: args.renderer,
            webhooks: args.webhooks,
            views: args.views,
            settings: ManagerSettings {
                max_concurrent: args.settings.max_concurrent.max(1),
                ..args.settings
            },
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            running: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<JobManagerMsg>,
        msg: JobManagerMsg,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            JobManagerMsg::Submit { request, reply } => {
                if state.queue.len() >= state.settings.max_queued {
                    let retry =
                        5 + 5 * (state.queue.len() / state.settings.max_concurrent.max(1)) as u64;
                    let _ = reply.send(Err(SubmitError::QueueFull {
                        queued: state.queue.len(),
                        retry_after_secs: retry.min(300),
                    }));
                    return Ok(());
                }
                let id = JobId::new();
                let view = JobView {
                    job_id: id.clone(),
                    status: JobStatus::Queued,
                    progress: 0,
                    message: "Waiting in queue".into(),
                    created_at: timestamp(Utc::now()),
                    started_at: None,
                    finished_at: None,
                    queue_position: Some(state.queue.len() + 1),
                    attempt: None,
                    result: None,
                    error: None,
                };
                info!(job_id = %id, scenes = request.spec.scenes.len(), quality = request.spec.quality.as_str(), "job queued");
                state.jobs.insert(
                    id.clone(),
                    Job {
                        spec: Some(request.spec),
                        webhook_url: request.webhook_url,
                        attempt: 0,
                        started: None,
                        actor: None,
                        waiters: Vec::new(),
                        view: view.clone(),
                    },
                );
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
                let Some(job) = state.jobs.get(&job_id) else {
                    return Ok(());
                };
                if job.attempt != attempt {
                    return Ok(());
                }
                let actor = job.actor;
                if let Some(actor) = actor
                    .and_then(|id| myself.get_children().into_iter().find(|c| c.get_id() == id))
                {
                    actor.stop(Some("render finished".into()));
                }
                state.finish(&job_id, result);
                state.pump(&myself).await;
            }
            JobManagerMsg::Stats(reply) => {
                let _ = reply.send(ManagerStats {
                    total: state.jobs.len(),
                    queued: state.queue.len(),
                    running: state.running.len(),
                    max_concurrent: state.settings.max_concurrent,
                    max_queued: state.settings.max_queued,
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
        let (cell, reason): (ActorCell, String) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (
                cell,
                format!("Failed to render video: render worker crashed: {err}"),
            ),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                format!(
                    "Failed to render video: render worker stopped ({})",
                    reason.unwrap_or_else(|| "no reason given".into())
                ),
            ),
            _ => return Ok(()),
        };
        if let Some(job_id) = state.running.remove(&cell.get_id()) {
            error!(job_id = %job_id, "{reason}");
            if let Some(job) = state.jobs.get_mut(&job_id) {
                job.actor = None;
            }
            state.finish(&job_id, Err(reason));
            state.pump(&myself).await;
        }
        Ok(())
    }
}
